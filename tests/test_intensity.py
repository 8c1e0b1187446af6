import json
from pathlib import Path

import pytest
import torch

from freq_transforms import IntensityScale, IntensityScaled
from freq_transforms.lab.contrast import phantom_contrast
from freq_transforms.lab.phantoms import make_case

ROOT = Path(__file__).resolve().parents[1]


def test_paper_mode_is_min_max():
    x = torch.tensor([[[-3.0, 1.0], [5.0, 0.0]]])
    out = IntensityScale("paper")(x)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    torch.testing.assert_close(out, (x + 3.0) / 8.0)


def test_ct_window_maps_hounsfield_units_and_clips():
    x = torch.tensor([[-1000.0, -57.0, 53.5, 164.0, 1500.0]])
    torch.testing.assert_close(IntensityScale("ct_window")(x), torch.tensor([[0.0, 0.0, 0.5, 1.0, 1.0]]))
    torch.testing.assert_close(IntensityScale("ct_window", window=(0, 100))(torch.tensor([[50.0]])), torch.tensor([[0.5]]))


def test_percentiles_ignore_heavy_tails():
    generator = torch.Generator().manual_seed(0)
    x = 0.02 * torch.randn(1, 40, 40, 40, generator=generator)
    x[0, 0, 0, :3] = torch.tensor([-2.0, 2.0, 1.5])  # streak voxels of several ppm
    robust, min_max = IntensityScale("percentile")(x), IntensityScale("paper")(x)
    assert float(robust.min()) == 0.0 and float(robust.max()) == 1.0
    assert float(robust[0, 1:].std()) > 10 * float(min_max[0, 1:].std())  # the tissue keeps its spread


def test_dict_version_and_bad_options():
    data = {"image": torch.rand(1, 4, 4, 4) * 100, "label": torch.ones(1, 4, 4, 4)}
    out = IntensityScaled("image", mode="percentile")(data)
    assert float(out["image"].max()) == 1.0 and torch.equal(out["label"], data["label"])
    with pytest.raises(ValueError, match="intensity must be one of"):
        IntensityScale("zscore")
    with pytest.raises(ValueError, match="lower bound below the upper"):
        IntensityScale("ct_window", window=(100, -100))
    with pytest.raises(ValueError, match="percentiles must lie in 0..100"):
        IntensityScale("percentile", percentiles=(1, 101))


def test_phantoms_have_each_modality_range():
    ct, _, _ = make_case("spleen", 0)
    assert ct.min() < -900 and ct.max() > 500  # Hounsfield units: air and bone
    qsm, label, _ = make_case("red_nucleus", 0)
    assert qsm.min() < -0.5 < 0.5 < qsm.max()  # signed ppm with streak outliers
    assert 0.05 < float(qsm[label > 0].mean()) < 0.2  # a paramagnetic nucleus


@pytest.mark.parametrize("task,default", [("red_nucleus", "percentile"), ("spleen", "ct_window")])
def test_each_non_mri_default_beats_min_max_on_its_phantoms(task, default):
    contrast = phantom_contrast(task, ("paper", default), n=3)
    assert contrast[default] > 4 * contrast["paper"]


@pytest.mark.parametrize("name,mode,fmt", [("red_nucleus_qsm_fd_segmentation", "percentile", "susceptibility"),
                                           ("dentate_nucleus_qsm_fd_segmentation", "percentile", "susceptibility"),
                                           ("spleen_ct_fd_segmentation", "ct_window", "hounsfield"),
                                           ("heart_mri_fd_segmentation", "paper", "magnitude"),
                                           ("hippocampus_mri_fd_segmentation", "paper", "magnitude")])
def test_bundle_defaults_and_metadata_per_modality(name, mode, fmt):
    configs = ROOT / "bundles" / name / "configs"
    assert json.loads((configs / "train.json").read_text())["intensity"] == mode
    meta = json.loads((configs / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["format"] == fmt
    assert f"`{mode}` by default" in (ROOT / "bundles" / name / "docs" / "README.md").read_text()
