"""The trial: "does FD help on my data?" answered with paired statistics on any segmentation bundle
(:func:`run_trial`; ``python -m freq_transforms trial``, and ``sweep`` on a bundle's own split), and the paired
comparison of finished trials (:func:`compare_folders`)."""

from .compare import compare_folders, export_trial, folder_runs
from .runner import TrialError, run_trial

__all__ = ["run_trial", "TrialError", "compare_folders", "export_trial", "folder_runs"]
