import pytest
import torch
from torch import nn

from freq_transforms import FrequencyDisentangledNet
from freq_transforms.networks import FUSE_OPS, FUSIONS

SMALL = {
    "UNet": {"channels": (8, 16, 32), "strides": (2, 2), "num_res_units": 1},
    "SegResNet": {"init_filters": 8, "blocks_down": (1, 1, 1), "blocks_up": (1, 1)},
    "DynUNet": {"kernel_size": (3, 3, 3), "strides": (1, 2, 2), "upsample_kernel_size": (2, 2),
                "filters": (8, 16, 32)},
}
CASES = [(b, f, o) for b in SMALL for f in FUSIONS for o in FUSE_OPS if not (f == "none" and o != "spectral")]


def _trainable(net):
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def _net(backbone, fusion, fuse="spectral", **kw):
    return FrequencyDisentangledNet(backbone, 1, 3, fusion=fusion, fuse=fuse, backbone_kwargs=SMALL[backbone], **kw)


@pytest.mark.parametrize("backbone,fusion,fuse", CASES)
def test_output_shape_on_odd_sizes_and_parameter_count(backbone, fusion, fuse):
    net = _net(backbone, fusion, fuse)
    x = torch.rand(2, 1, 33, 47, 29)
    assert net(x).shape == (2, 3, 33, 47, 29)
    plain = _trainable(_net(backbone, "none"))
    branch_convs = 2 * 8 * 27  # two bias-free 3x3x3 convs, 1 -> 8 channels
    if fusion == "none":
        assert _trainable(net) == plain
    else:
        assert _trainable(net) > plain + branch_convs - 16 * 27 * 3  # backbone input/output adapt


def test_parameter_count_of_early_spectral_is_exact():
    plain = _trainable(_net("UNet", "none"))
    early = _trainable(_net("UNet", "early"))
    # the backbone's first conv sees 8 channels instead of 1; plus two 1->8 branch convs
    assert early > plain
    unet = FrequencyDisentangledNet("UNet", 8, 3, fusion="none", backbone_kwargs=SMALL["UNet"])
    assert early == _trainable(unet) + 2 * 8 * 27


@pytest.mark.parametrize("fusion", FUSIONS)
def test_torchscript_export_matches_eager(fusion):
    net = _net("UNet", fusion).eval()
    scripted = torch.jit.script(net)
    x = torch.rand(1, 1, 20, 24, 16)
    torch.testing.assert_close(scripted(x), net(x))


def test_swinunetr_backbone_forward_and_trace():
    pytest.importorskip("einops")
    net = FrequencyDisentangledNet("SwinUNETR", 1, 2, fusion="early",
                                   backbone_kwargs={"feature_size": 12, "depths": (1, 1, 1, 1)}).eval()
    x = torch.rand(1, 1, 64, 64, 64)  # SwinUNETR needs 32-divisible sizes; 64 keeps instance norm defined
    assert net(x).shape == (1, 2, 64, 64, 64)
    traced = torch.jit.trace(net, x)
    torch.testing.assert_close(traced(x), net(x), atol=1e-4, rtol=1e-4)


def test_learnable_cutoff_gets_gradient_and_moves():
    torch.manual_seed(0)
    net = _net("UNet", "late", learnable_cutoff=True)
    start = net.split.cutoff
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x, y = torch.rand(2, 1, 16, 16, 16), torch.randint(0, 3, (2, 16, 16, 16))
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        assert net.split.cutoff_logit.grad is not None and net.split.cutoff_logit.grad.abs() > 0
        opt.step()
    assert abs(net.split.cutoff - start) > 1e-3


def test_fixed_cutoff_is_not_trained():
    net = _net("UNet", "late")
    assert not net.split.cutoff_logit.requires_grad
    assert net.split.cutoff == pytest.approx(0.1)


def test_2d_network():
    net = FrequencyDisentangledNet("UNet", 2, 2, fusion="late", spatial_dims=2,
                                   backbone_kwargs={"channels": (8, 16), "strides": (2,), "num_res_units": 0})
    assert net(torch.rand(1, 2, 31, 17)).shape == (1, 2, 31, 17)


def test_factory_and_module_backbones():
    from monai.networks.nets import UNet

    def factory(cin, cout):
        return UNet(3, cin, cout, channels=(8, 16), strides=(2,))

    net = FrequencyDisentangledNet(factory, 1, 2, fusion="late")
    assert net(torch.rand(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)
    ok = UNet(3, 8, 2, channels=(8, 16), strides=(2,))
    assert FrequencyDisentangledNet(ok, 1, 2, fusion="early")(torch.rand(1, 1, 8, 8, 8)).shape == (1, 2, 8, 8, 8)
    with pytest.raises(ValueError, match="in_channels=1 does not fit"):
        FrequencyDisentangledNet(UNet(3, 1, 2, channels=(8, 16), strides=(2,)), 1, 2, fusion="early")


def test_no_padding_gives_clear_divisibility_error():
    net = _net("UNet", "early", pad_to_divisible=False)
    assert net(torch.rand(1, 1, 16, 16, 16)).shape == (1, 3, 16, 16, 16)
    with pytest.raises(ValueError, match=r"divisible by \[4, 4, 4\]"):
        net(torch.rand(1, 1, 33, 47, 29))


@pytest.mark.parametrize("kwargs,match", [
    ({"fusion": "middle"}, "fusion"), ({"fuse": "multiply"}, "fuse"), ({"mask": "star"}, "mask"),
    ({"cutoff": 0.0}, "cutoff"), ({"backbone": "NotANet"}, "monai.networks.nets"),
    ({"learnable_cutoff": True, "centered": False}, "centered"),
])
def test_bad_options_raise(kwargs, match):
    args = {"backbone": "UNet", "in_channels": 1, "out_channels": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        FrequencyDisentangledNet(**args)


def test_wrong_input_channels_raise():
    with pytest.raises(ValueError, match=r"expected input \(B, 1"):
        _net("UNet", "late")(torch.rand(1, 2, 16, 16, 16))


@pytest.mark.parametrize("spatial_dims,in_channels", [(2, 1), (3, 1), (3, 2)])
def test_grouped_branches_equal_two_separate_convs(spatial_dims, in_channels):
    from freq_transforms.networks import FrequencyBranches

    torch.manual_seed(0)
    branches = FrequencyBranches(spatial_dims, in_channels, features=4)
    size = (2, in_channels) + (9, 10, 7)[:spatial_dims]
    low, high = torch.randn(size), torch.randn(size)
    got_low, got_high = branches(low, high)
    torch.testing.assert_close(got_low, branches.conv_low(low))
    torch.testing.assert_close(got_high, branches.conv_high(high))
