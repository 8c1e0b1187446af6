"""HD95 in millimetres from each label's affine, as the bundles' evaluate.json computes it."""

import numpy as np
import torch
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler, from_engine
from monai.metrics import HausdorffDistanceMetric
from ignite.engine import Engine

from freq_transforms.metrics import HausdorffDistanceMM, voxel_spacing


def _one_hot_box(start: int, spacing, shape=(20, 12, 12)) -> MetaTensor:
    mask = torch.zeros(shape)
    mask[start:start + 6, 3:9, 3:9] = 1
    return MetaTensor(torch.stack([1 - mask, mask]), affine=torch.diag(torch.tensor([*spacing, 1.0])))


def test_voxel_spacing_reads_rotated_and_batched_affines():
    rotation = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.5, 2.0, 3.0])
    np.testing.assert_allclose(voxel_spacing(affine), [0.5, 2.0, 3.0])
    np.testing.assert_allclose(voxel_spacing(torch.as_tensor(affine)[None]), [0.5, 2.0, 3.0])


def test_hd95_scales_with_spacing_through_the_ignite_handler():
    pred, label = _one_hot_box(3, (2.0, 1.0, 1.0)), _one_hot_box(6, (2.0, 1.0, 1.0))  # 3 voxels apart on axis 0

    def hd95(metric_fn):
        engine = Engine(lambda e, b: b)
        IgniteMetricHandler(metric_fn=metric_fn, output_transform=from_engine(["pred", "label"])).attach(engine, "hd")
        return engine.run([[{"pred": pred, "label": label}]]).metrics["hd"]

    assert hd95(HausdorffDistanceMetric(include_background=False, percentile=95)) == 3.0  # MONAI: voxels
    assert hd95(HausdorffDistanceMM(include_background=False, percentile=95)) == 6.0  # 3 voxels x 2 mm
