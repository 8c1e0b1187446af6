"""Data helpers for the bundles, one job per module:

- :mod:`.datalist`: MSD datalists and inference input listings;
- :mod:`.fingerprints`: cases that share one image, by a cached hash of the voxels;
- :mod:`.case_checks`: can a case be trained on (one-line errors naming the file);
- :mod:`.splits`: deterministic, nested small-n splits and K-fold cross-validation.

The bundle configs name them as ``freq_transforms.data.<name>``.
"""

from ..errors import DataError
from .case_checks import NAN_POLICIES, check_case, check_datalist, checked_datalist, load_voxels
from .datalist import Item, NIFTI_SUFFIXES, bundle_image_list, image_list, load_msd_datalist, move_files
from .fingerprints import cached_fingerprints, fingerprint_cache_file, image_fingerprint, participant_groups
from .splits import bundle_split, epoch_sampler, evaluation_cases, fold_assignment, make_split, split_datalist

__all__ = ["DataError", "NAN_POLICIES", "check_case", "check_datalist", "checked_datalist", "load_voxels", "Item",
           "NIFTI_SUFFIXES", "bundle_image_list", "image_list", "load_msd_datalist", "move_files",
           "cached_fingerprints", "fingerprint_cache_file", "image_fingerprint", "participant_groups", "bundle_split", "epoch_sampler",
           "evaluation_cases",
           "fold_assignment", "make_split", "split_datalist"]
