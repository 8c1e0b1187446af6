"""HD95 in millimetres from each label's affine, as the bundles' evaluate.json computes it."""

import torch
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler, from_engine
from monai.metrics import HausdorffDistanceMetric
from ignite.engine import Engine

from freq_transforms.metrics import HausdorffDistanceMM


def _one_hot_box(start: int, spacing, shape=(20, 12, 12)) -> MetaTensor:
    mask = torch.zeros(shape)
    mask[start:start + 6, 3:9, 3:9] = 1
    return MetaTensor(torch.stack([1 - mask, mask]), affine=torch.diag(torch.tensor([*spacing, 1.0])))


def test_hd95_reads_spacing_from_a_rotated_batched_affine():
    """Spacing per array axis is the column norm of the affine's rotation-zoom part (monai's affine_to_spacing)."""
    rotation = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    affine = torch.eye(4, dtype=torch.float64)
    affine[:3, :3] = rotation @ torch.diag(torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64))
    pred, label = _one_hot_box(3, (1.0, 1.0, 1.0)), _one_hot_box(6, (1.0, 1.0, 1.0))  # 3 voxels apart on axis 0
    label = MetaTensor(label.as_tensor(), affine=affine)
    metric = HausdorffDistanceMM(include_background=False, percentile=95)
    distance = metric(pred[None], label[None])
    assert float(distance) == 6.0  # 3 voxels of 2 mm


def test_hd95_scales_with_spacing_through_the_ignite_handler():
    pred, label = _one_hot_box(3, (2.0, 1.0, 1.0)), _one_hot_box(6, (2.0, 1.0, 1.0))  # 3 voxels apart on axis 0

    def hd95(metric_fn):
        engine = Engine(lambda e, b: b)
        IgniteMetricHandler(metric_fn=metric_fn, output_transform=from_engine(["pred", "label"])).attach(engine, "hd")
        return engine.run([[{"pred": pred, "label": label}]]).metrics["hd"]

    assert hd95(HausdorffDistanceMetric(include_background=False, percentile=95)) == 3.0  # MONAI: voxels
    assert hd95(HausdorffDistanceMM(include_background=False, percentile=95)) == 6.0  # 3 voxels x 2 mm


def test_the_one_mean_per_case_over_seeds():
    """The sweep's table, the trial's report and compare all average each case over seeds with this one function."""
    import math

    from freq_transforms.metrics import mean_per_case

    pairs = [("a", 0.5), ("b", 0.6), ("a", 0.75), ("b", float("nan")), ("c", float("nan"))]
    assert mean_per_case(pairs, undefined="skip") == {"a": 0.625, "b": 0.6}
    kept = mean_per_case(pairs)
    assert kept["a"] == 0.625 and math.isnan(kept["b"]) and math.isnan(kept["c"])
