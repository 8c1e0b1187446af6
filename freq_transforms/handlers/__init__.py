"""Ignite handlers the bundles attach, one job per module:

- :mod:`.weights`: ``model.pt`` saved when validation improves (with its recipe) and loaded with the settings check;
- :mod:`.resume`: bit-exact resume after a kill;
- :mod:`.schedule`: validation interval and the poly learning rate;
- :mod:`.metrics_log`: per-class Dice, the validation CSV and the training clock;
- :mod:`.distributed`: multi-GPU helpers.

The bundle configs name them as ``freq_transforms.handlers.<Name>``.
"""

from .distributed import distributed_device, is_main_process, leave_process_group
from .metrics_log import SharedHandler, TrainingClock, ValidationMetricsCSV, class_dice_metrics
from .resume import RandomStates, ResumeCheckpoint
from .schedule import PeriodicValidation, PolyLearningRate
from .weights import (BestModelSaver, OverwritingDiskSaver, RecordedWeights, SaveIfNeverValidated, WeightsLoader,
                      set_aside_previous_weights)

__all__ = ["distributed_device", "is_main_process", "leave_process_group", "SharedHandler", "TrainingClock",
           "ValidationMetricsCSV", "class_dice_metrics", "RandomStates", "ResumeCheckpoint", "PeriodicValidation",
           "PolyLearningRate", "BestModelSaver", "OverwritingDiskSaver", "RecordedWeights", "SaveIfNeverValidated",
           "WeightsLoader", "set_aside_previous_weights"]
