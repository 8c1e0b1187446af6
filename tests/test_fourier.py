import math

import pytest
import torch

from freq_transforms import disentangle, low_pass_mask, soft_low_pass_mask
from freq_transforms.fourier import MASK_SHAPES

SHAPES = [(32, 32, 24), (33, 47, 29)]


def _checkerboard(shape):
    grids = torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij")
    return ((-1.0) ** sum(grids)).float()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask", MASK_SHAPES)
@pytest.mark.parametrize("centered", [True, False])
def test_parts_are_real_float32_of_the_input_shape(shape, mask, centered):
    x = torch.randn(2, 3, *shape)
    low, high = disentangle(x, 0.1, mask, centered=centered)
    assert low.shape == high.shape == x.shape
    assert not low.is_complex() and low.dtype == torch.float32
    assert low.abs().max() > 0 and high.abs().max() > 0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask", ["box", "ball"])
def test_low_spectrum_is_zero_outside_mask_and_high_inside(shape, mask):
    x = torch.randn(1, *shape, dtype=torch.float64)
    low, high = disentangle(x, 0.2, mask)
    m = low_pass_mask(shape, 0.2, mask).double()
    low_spec = torch.fft.fftn(low, dim=(-3, -2, -1))
    high_spec = torch.fft.fftn(high, dim=(-3, -2, -1))
    scale = torch.fft.fftn(x, dim=(-3, -2, -1)).abs().max()
    assert (low_spec * (1 - m)).abs().max() < 1e-9 * scale
    assert (high_spec * m).abs().max() < 1e-9 * scale
    assert (low_spec * m).abs().max() > 1e-3 * scale


def test_box_width_is_nearest_odd_bins_and_at_least_dc():
    m = low_pass_mask((160, 160, 128), cutoff=0.1)
    assert m.shape == (160, 160, 128)
    assert m.sum() == 17 * 17 * 13
    assert low_pass_mask((10, 10), cutoff=0.01).sum() == 1  # DC only
    assert m[0, 0, 0] == 1 and m[80, 0, 0] == 0


def test_released_box_sits_at_unshifted_centre_on_xy_only():
    m = low_pass_mask((160, 160, 128), cutoff=0.1, axes=[0, 1], centered=False)
    assert m.shape == (160, 160, 1)
    assert m.sum() == 16 * 16
    assert m[72:88, 72:88].min() == 1 and m[0, 0, 0] == 0


def test_rfft_layout_matches_full_layout():
    full = low_pass_mask((20, 18, 16), 0.3, "ball")
    half = low_pass_mask((20, 18, 16), 0.3, "ball", rfft=True)
    assert half.shape == (20, 18, 9)
    torch.testing.assert_close(half, full[..., :9])


def test_constant_image_is_all_low():
    x = torch.full((1, 16, 20, 12), 3.5)
    low, high = disentangle(x)
    torch.testing.assert_close(low, x)
    assert high.abs().max() < 1e-5


@pytest.mark.parametrize("mask", MASK_SHAPES)
def test_checkerboard_is_all_high_when_centered(mask):
    x = _checkerboard((16, 16, 16))[None]
    low, high = disentangle(x, 0.5, mask)
    assert low.abs().max() < (1e-5 if mask != "gaussian" else 1e-2)
    torch.testing.assert_close(high, x, atol=1e-2, rtol=0)


def test_checkerboard_is_low_band_of_released_split():
    # the released code's "low" band is the Nyquist corner: documents why it is not the default
    x = _checkerboard((16, 16, 16))[None]
    low, _ = disentangle(x, 0.2, "box", centered=False)
    torch.testing.assert_close(low, x, atol=1e-5, rtol=0)


def test_2d_and_axes_subset():
    x = torch.randn(4, 1, 24, 30, dtype=torch.float64)
    low, high = disentangle(x, 0.25, spatial_dims=2)
    m = low_pass_mask((24, 30), 0.25).double()
    scale = torch.fft.fftn(x, dim=(-2, -1)).abs().max()
    assert (torch.fft.fftn(low, dim=(-2, -1)) * (1 - m)).abs().max() < 1e-9 * scale  # low: only the box
    assert (torch.fft.fftn(high, dim=(-2, -1)) * m).abs().max() < 1e-9 * scale        # high: none of it
    # filtering only axis 0 leaves a signal constant along axis 0 untouched in the low part
    y = torch.randn(1, 1, 30).expand(1, 24, 30).contiguous()
    low, _ = disentangle(y, 0.25, axes=[0], spatial_dims=2)
    torch.testing.assert_close(low, y, atol=1e-5, rtol=0)


def test_batch_equals_per_sample():
    x = torch.randn(3, 2, 16, 12, 10)
    low, _ = disentangle(x)
    for i in range(3):
        torch.testing.assert_close(low[i], disentangle(x[i])[0], atol=1e-5, rtol=0)


def test_gradients_flow_and_integer_input():
    x = torch.randn(1, 1, 12, 12, 12, requires_grad=True)
    low, high = disentangle(x)
    (low.square().sum() + 2 * high.square().sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    low, _ = disentangle(torch.ones(1, 8, 8, 8, dtype=torch.uint8))
    assert low.dtype == torch.float32


def test_soft_mask_gradient_wrt_cutoff():
    c = torch.tensor(0.2, requires_grad=True)
    m = soft_low_pass_mask([16, 16, 16], c, "box", rfft=True)
    assert m.shape == (16, 16, 9)
    m.sum().backward()
    assert c.grad > 0


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_cutoff_outside_unit_interval_raises(bad):
    with pytest.raises(ValueError, match="cutoff"):
        disentangle(torch.rand(1, 8, 8, 8), cutoff=bad)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="mask shape"):
        low_pass_mask((8, 8, 8), shape="star")
    with pytest.raises(ValueError, match="axes"):
        disentangle(torch.rand(1, 8, 8, 8), axes=[3])
    with pytest.raises(ValueError, match="spatial_dims"):
        disentangle(torch.rand(8, 8), spatial_dims=3)
    with pytest.raises(TypeError, match="complex"):
        disentangle(torch.rand(1, 8, 8, 8, dtype=torch.complex64))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.randn(2, 1, 20, 22, 18)
    for centered in (True, False):
        low_cpu, _ = disentangle(x, centered=centered)
        low_gpu, _ = disentangle(x.cuda(), centered=centered)
        torch.testing.assert_close(low_gpu.cpu(), low_cpu, atol=1e-5, rtol=1e-4)


SEPARABLE_CASES = [(3, (32, 32, 24), None), (3, (33, 47, 29), None), (3, (33, 47, 29), [0]), (3, (33, 47, 29), [2]),
                   (3, (32, 31, 24), [0, 2]), (3, (33, 47, 29), [1, 2]), (2, (24, 30), None), (2, (25, 31), None),
                   (2, (25, 31), [1]), (2, (24, 30), [0])]


@pytest.mark.parametrize("spatial_dims,shape,axes", SEPARABLE_CASES)
@pytest.mark.parametrize("cutoff", [0.1, 0.25])
def test_fast_separable_split_equals_the_fft_split(spatial_dims, shape, axes, cutoff):
    """The bundles' networks split with a separable projection (FrequencySplit, box mask): it must equal
    disentangle's FFT split on odd and even sizes, in 2-D and 3-D, for every axis set."""
    from unittest import mock

    from freq_transforms.networks import FrequencySplit

    x = torch.randn(2, 1, *shape)
    split = FrequencySplit(cutoff, "box", spatial_dims, axes)
    with mock.patch("freq_transforms.frequency_split.apply_low_pass", side_effect=AssertionError("FFT path taken")):
        low, high = split(x)
    want_low, want_high = disentangle(x, cutoff, "box", axes=axes, spatial_dims=spatial_dims)
    torch.testing.assert_close(low, want_low, atol=2e-5, rtol=0)
    torch.testing.assert_close(high, want_high, atol=2e-5, rtol=0)
