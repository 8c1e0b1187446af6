"""The trial: "does FD help on my data?" answered with paired statistics on any segmentation bundle
(:func:`run_trial`; ``python -m freq_transforms trial``)."""

from .runner import TrialError, run_trial

__all__ = ["run_trial", "TrialError"]
