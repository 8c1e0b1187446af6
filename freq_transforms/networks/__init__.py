"""Frequency-disentangled networks around any MONAI segmentation backbone, one job per module:

- :mod:`.backbones`: backbone surgery (build, divisor, probe, split input convs, pad and crop);
- :mod:`.low_frequency_correction`: the late v2 head;
- :mod:`.paper_layout`: the released code's layers (``arch="paper"``);
- :mod:`.recipe_carrier`: checks, keeps and writes back the weights' record (state_dict, load_state_dict);
- :mod:`.fd_net`: :class:`FrequencyDisentangledNet`, the wrapper;
- :mod:`.averaging`: :class:`MeanProbabilities`, a fold ensemble and test-time mirroring as one network, and
  :class:`AveragingInferer`, which runs it inside any inferer.

The split itself is :class:`freq_transforms.frequency_split.FrequencySplit`.
"""

from ..frequency_split import FrequencySplit
from .backbones import BACKBONE_DEFAULTS, backbone_divisor, build_backbone, input_convs, probe, split_input_convs
from .averaging import (AveragingInferer, MeanProbabilities, averaged_network, ensemble_members, mirror_flips,
                        weights_file)
from .fd_net import FrequencyDisentangledNet
from .low_frequency_correction import LowFrequencyCorrection
from ..fd_options import ARCHS, FUSE_OPS, FUSIONS
from .paper_layout import FrequencyBranches

__all__ = ["FUSIONS", "FUSE_OPS", "ARCHS", "BACKBONE_DEFAULTS", "build_backbone", "backbone_divisor", "probe",
           "input_convs", "split_input_convs", "FrequencySplit", "FrequencyBranches", "LowFrequencyCorrection",
           "FrequencyDisentangledNet", "MeanProbabilities", "AveragingInferer", "averaged_network", "ensemble_members",
           "mirror_flips", "weights_file"]
