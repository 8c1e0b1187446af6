import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from freq_transforms import FrequencyDisentangle, FrequencyDisentangled, disentangle


def test_array_transform_stacks_all_low_then_all_high_and_keeps_meta():
    affine = torch.diag(torch.tensor([2.0, 1.5, 1.0, 1.0]))
    img = MetaTensor(torch.rand(2, 16, 18, 12), affine=affine, meta={"filename_or_obj": "case.nii.gz"})
    out = FrequencyDisentangle(cutoff=0.2)(img)
    assert isinstance(out, MetaTensor) and out.shape == (4, 16, 18, 12)
    torch.testing.assert_close(out.affine, img.affine)
    assert out.meta["filename_or_obj"] == "case.nii.gz"
    low, high = disentangle(img.as_tensor(), 0.2)
    torch.testing.assert_close(out[:2].as_tensor(), low)
    torch.testing.assert_close(out[2:].as_tensor(), high)
    torch.testing.assert_close(out[:2].as_tensor() + out[2:].as_tensor(), img.as_tensor(), atol=1e-5, rtol=0)


def test_transform_and_network_stack_bands_in_one_channel_order():
    """Two-channel input: the transform's stack is the stack early fusion feeds its backbone, channel for
    channel ([low0, low1, high0, high1]); the old per-channel interleave [low0, high0, ...] fails this."""
    from freq_transforms.frequency_split import FrequencySplit

    img = torch.rand(2, 16, 18, 12)
    img[1] = torch.linspace(0, 1, 12)  # a second channel unlike the first, so an interleave is seen
    from_transform = FrequencyDisentangle(cutoff=0.1)(img)
    from_network = FrequencySplit(0.1, spatial_dims=3).stacked(img[None])[0]
    torch.testing.assert_close(from_transform, from_network, atol=1e-5, rtol=1e-5)


def test_array_transform_numpy_in_numpy_out_2d():
    out = FrequencyDisentangle()(np.random.rand(1, 20, 20).astype(np.float32))
    assert isinstance(out, np.ndarray) and out.shape == (2, 20, 20)


def test_dict_transform_keys_mode_in_compose():
    data = {"image": MetaTensor(torch.rand(1, 12, 12, 12)), "label": torch.zeros(1, 12, 12, 12)}
    out = Compose([FrequencyDisentangled("image", output="keys")])(data)
    assert set(out) == {"image", "image_low", "image_high", "label"}
    assert isinstance(out["image_low"], MetaTensor)
    torch.testing.assert_close(out["image_low"] + out["image_high"], out["image"], atol=1e-5, rtol=0)


def test_dict_transform_stack_mode():
    out = FrequencyDisentangled(["image"], mask="gaussian")({"image": torch.rand(1, 10, 10, 10)})
    assert out["image"].shape == (2, 10, 10, 10)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="output"):
        FrequencyDisentangled("image", output="both")
    with pytest.raises(ValueError, match="mask"):
        FrequencyDisentangle(mask="hexagon")
    with pytest.raises(ValueError, match="cutoff"):
        FrequencyDisentangle(cutoff=1.2)
    with pytest.raises(ValueError, match="channel-first"):
        FrequencyDisentangle()(torch.rand(4, 4, 4, 4, 4))
