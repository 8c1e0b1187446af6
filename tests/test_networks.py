import pytest
import torch
from torch import nn

from freq_transforms import FrequencyDisentangledNet
from freq_transforms.networks import ARCHS, FUSE_OPS, FUSIONS

SMALL = {
    "UNet": {"channels": (8, 16, 32), "strides": (2, 2), "num_res_units": 1},
    "SegResNet": {"init_filters": 8, "blocks_down": (1, 1, 1), "blocks_up": (1, 1)},
    "DynUNet": {"kernel_size": (3, 3, 3), "strides": (1, 2, 2), "upsample_kernel_size": (2, 2),
                "filters": (8, 16, 32)},
}
CASES = [(b, f, o) for b in SMALL for f in FUSIONS for o in FUSE_OPS if not (f == "none" and o != "spectral")]
V2_CASES = [(b, f) for b in SMALL for f in ("early", "late")]


def _trainable(net):
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def _net(backbone, fusion, fuse="spectral", arch="paper", **kw):
    return FrequencyDisentangledNet(backbone, 1, 3, fusion=fusion, fuse=fuse, backbone_kwargs=SMALL[backbone], arch=arch,
                                    **kw)


@pytest.mark.parametrize("backbone,fusion", V2_CASES)
def test_v2_starts_as_its_backbone_at_the_backbone_size(backbone, fusion):
    """v2 early at initialisation computes what the plain backbone of the same seed computes; v2 late what
    the backbone computes on the high part; both add well under 1% parameters."""
    x = torch.rand(2, 1, 33, 47, 29)
    torch.manual_seed(0)
    plain = _net(backbone, "none", arch="v2")
    torch.manual_seed(0)
    net = _net(backbone, fusion, arch="v2")
    with torch.no_grad():
        if fusion == "early":
            torch.testing.assert_close(net(x), plain(x), atol=1e-4, rtol=1e-4)
        else:
            low, high = net.split(x)
            torch.testing.assert_close(net(x), net._run_backbone(high))
            assert not torch.allclose(net(x), plain(x), atol=1e-3)
    extra = _trainable(net) - _trainable(plain)
    assert 0 < extra < 0.05 * _trainable(plain) + 2000


def test_v2_early_feeds_low_and_high_into_the_backbone_input_convs():
    from freq_transforms.networks import input_convs

    net = FrequencyDisentangledNet("UNet", 1, 3, fusion="early", arch="v2", backbone_kwargs=SMALL["UNet"])
    convs = dict(net.backbone.named_modules())
    names = [n for n, m in convs.items() if isinstance(m, nn.Conv3d) and m.in_channels == 2]
    assert names == ["model.0.conv.unit0.conv", "model.0.residual"]
    for name in names:  # the two band copies start equal
        torch.testing.assert_close(convs[name].weight[:, 0], convs[name].weight[:, 1])
    plain = FrequencyDisentangledNet("UNet", 1, 3, fusion="none", backbone_kwargs=SMALL["UNet"]).backbone
    assert input_convs(plain, 1, 3, [4, 4, 4]) == names
    # a band weighted apart changes the output: the bands are separable inside the network
    x = torch.rand(1, 1, 16, 16, 16)
    before = net(x).detach()
    with torch.no_grad():
        convs[names[0]].weight[:, 0] *= 2
    assert not torch.allclose(net(x), before)


def test_v2_late_low_branch_learns_and_reaches_the_logits():
    torch.manual_seed(0)
    net = FrequencyDisentangledNet("UNet", 1, 3, fusion="late", arch="v2", backbone_kwargs=SMALL["UNet"])
    head = net.correction.out.conv
    assert torch.count_nonzero(head.weight) == 0
    x, y = torch.rand(2, 1, 24, 20, 16), torch.randint(0, 3, (2, 24, 20, 16))
    nn.functional.cross_entropy(net(x), y).backward()
    assert head.weight.grad.abs().sum() > 0  # the zero layer is trained from the first step
    assert net.correction.stride == 8  # <= 1 / cutoff: the low band is sampled without loss


def _ramp(size, axis):
    shape = [1, 1] + [1] * len(size)
    shape[2 + axis] = size[axis]
    return torch.arange(size[axis], dtype=torch.float32).view(shape).expand(1, 1, *size).contiguous()


@pytest.mark.parametrize("size", [(32, 24, 16), (64, 40, 8)])
def test_v2_late_samples_the_low_part_where_probabilities_are_pooled(size):
    """A ramp sampled by the head (``F.interpolate`` to the pooled grid) equals the ramp average-pooled into its
    cells: both sit at the cell centres. Sampling voxels 0, 8, 16 against cells centred at 3.5, 11.5 fails this."""
    from freq_transforms.networks import LowFrequencyCorrection

    head = LowFrequencyCorrection(3, in_channels=1, classes=2, stride=8)
    for axis in range(3):
        ramp = _ramp(size, axis)
        pooled = head.pool(ramp)
        torch.testing.assert_close(head.resample(ramp, list(pooled.shape[2:])), pooled)


@pytest.mark.parametrize("size", [(32, 24, 16), (64, 40, 8)])
def test_v2_late_correction_lands_where_it_was_taken(size):
    """A correction equal to a ramp's cell averages, interpolated back, is that ramp at every voxel between the
    first and last cell centres: the value arriving at voxel 20 is the one taken at voxel 20."""
    from freq_transforms.networks import LowFrequencyCorrection

    head = LowFrequencyCorrection(3, in_channels=1, classes=2, stride=8)
    for axis in range(3):
        ramp = _ramp(size, axis)
        back = head.resample(head.pool(ramp), list(size))
        stride = head.strides(list(size))[axis]
        inside = slice((stride - 1) // 2 + 1, size[axis] - stride // 2)
        index = [slice(None)] * 5
        index[2 + axis] = inside
        torch.testing.assert_close(back[tuple(index)], ramp[tuple(index)])


def test_v2_late_runs_on_thin_axes():
    """An axis under the stride (5 slices against 8) is pooled whole, not refused by ``avg_pool3d``."""
    net = FrequencyDisentangledNet("UNet", 1, 2, fusion="late", backbone_kwargs=SMALL["UNet"])
    assert net.correction.strides([32, 32, 5]) == [8, 8, 5]
    assert net(torch.rand(1, 1, 32, 32, 5)).shape == (1, 2, 32, 32, 5)


def test_v2_late_keeps_the_axes_the_split_leaves_alone():
    """With ``axes=[0, 1]`` (the released code's setting) content alternating along z stays in the low band;
    the correction keeps z at stride 1, so that content survives its pool-and-interpolate (stride 8 on z would
    average it to zero)."""
    net = FrequencyDisentangledNet("UNet", 1, 2, fusion="late", axes=[0, 1], backbone_kwargs=SMALL["UNet"])
    alternating = torch.ones(1, 1, 16, 16, 16)
    alternating[..., 1::2] = -1.0
    low, _ = net.split(alternating)
    torch.testing.assert_close(low, alternating, atol=1e-5, rtol=0)
    head = net.correction
    assert head.strides([16, 16, 16]) == [8, 8, 1]
    torch.testing.assert_close(head.resample(head.pool(low), [16, 16, 16]), alternating, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fusion", FUSIONS)
def test_cpu_autocast_bfloat16_forward_and_backward(arch, fusion):
    """The FFT split runs in float32 under autocast (cuFFT half precision takes power-of-two sizes only)."""
    torch.manual_seed(0)
    net = FrequencyDisentangledNet("UNet", 1, 3, fusion=fusion, arch=arch, fuse="spectral", backbone_kwargs=SMALL["UNet"])
    x, y = torch.rand(2, 1, 24, 20, 12), torch.randint(0, 3, (2, 24, 20, 12))
    reference = net(x).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, high = net.split(x.bfloat16())
        assert low.dtype == high.dtype == torch.float32
        out = net(x)
        loss = nn.functional.cross_entropy(out.float(), y)
    loss.backward()
    assert out.shape == reference.shape
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert (out.float() - reference).abs().mean() < 0.05


@pytest.mark.parametrize("trained,configured,flag", [
    ({"arch": "paper", "fusion": "early"}, {"arch": "v2", "fusion": "early"}, "--arch paper"),
    ({"arch": "v2", "fusion": "late"}, {"arch": "v2", "fusion": "early"}, "--fusion late"),
    ({"arch": "paper", "fusion": "late", "fuse": "concat"}, {"arch": "v2", "fusion": "none"},
     "--arch paper --fusion late"),
])
def test_checkpoint_of_another_layout_names_the_override(trained, configured, flag):
    from freq_transforms.networks.checkpoint import checkpoint_mismatch

    def build(settings):
        return FrequencyDisentangledNet("UNet", 1, 3, backbone_kwargs=SMALL["UNet"], **{"fuse": "concat", **settings})

    state = build(trained).state_dict()
    problem = checkpoint_mismatch(build(configured), state)
    assert problem is not None and problem.endswith(f"pass {flag}") and "\n" not in problem, problem
    assert checkpoint_mismatch(build(trained), state) is None
    other = FrequencyDisentangledNet("UNet", 1, 4, backbone_kwargs=SMALL["UNet"], **configured)
    assert "fit no arch/fusion/fuse setting" in checkpoint_mismatch(other, state)


def test_checkpoint_whose_fuse_cannot_be_told_apart_names_both():
    from freq_transforms.networks.checkpoint import checkpoint_mismatch

    def build(**settings):
        return FrequencyDisentangledNet("UNet", 1, 3, backbone_kwargs=SMALL["UNet"], **settings)

    problem = checkpoint_mismatch(build(arch="v2", fusion="early", fuse="concat"),
                                  build(arch="paper", fusion="late", fuse="add").state_dict())
    assert "pass --arch paper --fusion late" in problem and "add" in problem and "spectral" in problem


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


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fusion", FUSIONS)
def test_torchscript_export_matches_eager(fusion, arch):
    net = _net("UNet", fusion, arch=arch).eval()
    scripted = torch.jit.script(net)
    x = torch.rand(1, 1, 20, 24, 16)
    torch.testing.assert_close(scripted(x), net(x))


@pytest.mark.slow
def test_swinunetr_backbone_forward_and_trace():
    pytest.importorskip("einops")
    net = FrequencyDisentangledNet("SwinUNETR", 1, 2, fusion="early", arch="paper",
                                   backbone_kwargs={"feature_size": 12, "depths": (1, 1, 1, 1)}).eval()
    x = torch.rand(1, 1, 64, 64, 64)  # SwinUNETR needs 32-divisible sizes; 64 keeps instance norm defined
    assert net(x).shape == (1, 2, 64, 64, 64)
    traced = torch.jit.trace(net, x)
    torch.testing.assert_close(traced(x), net(x), atol=1e-4, rtol=1e-4)


def test_swinunetr_v2_early_splits_both_input_layers():
    pytest.importorskip("einops")
    torch.manual_seed(0)
    kwargs = {"feature_size": 12, "depths": (1, 1, 1, 1)}
    plain = FrequencyDisentangledNet("SwinUNETR", 1, 2, fusion="none", backbone_kwargs=kwargs).eval()
    torch.manual_seed(0)
    net = FrequencyDisentangledNet("SwinUNETR", 1, 2, fusion="early", arch="v2", backbone_kwargs=kwargs).eval()
    split = [n for n, m in net.backbone.named_modules() if isinstance(m, nn.Conv3d) and m.in_channels == 2]
    assert "swinViT.patch_embed.proj" in split and len(split) >= 2
    x = torch.rand(1, 1, 64, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_learnable_cutoff_gets_gradient_and_moves(arch):
    torch.manual_seed(0)
    net = _net("UNet", "late", arch=arch, learnable_cutoff=True)
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
    for arch in ARCHS:
        for fusion in ("early", "late"):
            net = FrequencyDisentangledNet("UNet", 2, 2, fusion=fusion, spatial_dims=2, arch=arch,
                                           backbone_kwargs={"channels": (8, 16), "strides": (2,), "num_res_units": 0})
            assert net(torch.rand(1, 2, 31, 17)).shape == (1, 2, 31, 17)


def test_factory_and_module_backbones():
    from monai.networks.nets import UNet

    def factory(cin, cout):
        return UNet(3, cin, cout, channels=(8, 16), strides=(2,))

    for arch in ARCHS:
        net = FrequencyDisentangledNet(factory, 1, 2, fusion="late", arch=arch)
        assert net(torch.rand(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)
    ok = UNet(3, 8, 2, channels=(8, 16), strides=(2,))
    paper = FrequencyDisentangledNet(ok, 1, 2, fusion="early", arch="paper", fuse="spectral")
    assert paper(torch.rand(1, 1, 8, 8, 8)).shape == (1, 2, 8, 8, 8)
    with pytest.raises(ValueError, match="in_channels=1 does not fit"):
        FrequencyDisentangledNet(UNet(3, 1, 2, channels=(8, 16), strides=(2,)), 1, 2, fusion="early", arch="paper",
                                 fuse="spectral")
    plain = UNet(3, 1, 2, channels=(8, 16), strides=(2,))  # v2 wraps the plain backbone itself
    v2 = FrequencyDisentangledNet(plain, 1, 2, fusion="early", arch="v2")
    assert v2(torch.rand(1, 1, 8, 8, 8)).shape == (1, 2, 8, 8, 8) and v2.backbone is plain


def test_no_padding_gives_clear_divisibility_error():
    net = _net("UNet", "early", pad_to_divisible=False)
    assert net(torch.rand(1, 1, 16, 16, 16)).shape == (1, 3, 16, 16, 16)
    with pytest.raises(ValueError, match=r"divisible by \[4, 4, 4\]"):
        net(torch.rand(1, 1, 33, 47, 29))


@pytest.mark.parametrize("kwargs,match", [
    ({"fusion": "middle"}, "fusion"), ({"fuse": "multiply"}, "fuse"), ({"mask": "star"}, "mask"),
    ({"cutoff": 0.0}, "cutoff"), ({"backbone": "NotANet"}, "monai.networks.nets"),
    ({"learnable_cutoff": True, "centered": False}, "centered"), ({"arch": "v3"}, "arch"),
])
def test_bad_options_raise(kwargs, match):
    args = {"backbone": "UNet", "in_channels": 1, "out_channels": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        FrequencyDisentangledNet(**args)


@pytest.mark.parametrize("arch", ARCHS)
def test_wrong_input_channels_raise(arch):
    with pytest.raises(ValueError, match=r"expected input \(B, 1"):
        _net("UNet", "late", arch=arch)(torch.rand(1, 2, 16, 16, 16))


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


def test_load_state_dict_itself_names_the_override_for_any_loader():
    """monai.bundle ckpt_export and MONAI Label call load_state_dict directly: they get the same one line."""
    from freq_transforms.recipe import weights_with_record

    late = FrequencyDisentangledNet("UNet", 1, 3, fusion="late", arch="v2", backbone_kwargs=SMALL["UNet"])
    early = FrequencyDisentangledNet("UNet", 1, 3, fusion="early", arch="v2", backbone_kwargs=SMALL["UNet"])
    python_words = (r"^the weights do not fit this network: it was trained with fusion='late', this network has "
                    r"fusion='early': build FrequencyDisentangledNet\(\.\.\., fusion='late'\) \(in a bundle: pass "
                    r"--fusion late\)$")
    with pytest.raises(ValueError, match=python_words):
        early.load_state_dict(weights_with_record(late))
    with pytest.raises(ValueError, match=python_words):  # without the record: from the layer shapes
        early.load_state_dict(late.state_dict())
    late.load_state_dict(weights_with_record(late))  # the right network loads as before


def test_stacked_split_equals_concatenated_parts_also_scripted():
    from freq_transforms.networks import FrequencySplit

    split = FrequencySplit(cutoff=0.2)
    x = torch.rand(2, 3, 20, 21, 9)
    torch.testing.assert_close(split.stacked(x), torch.cat(split(x), dim=1))
    torch.testing.assert_close(torch.jit.script(split).stacked(x), split.stacked(x))


def test_shipped_heart_weights_load_into_the_constructor_defaults_and_settings_that_change_nothing():
    """fuse and features change no tensor of early v2: weights trained with fuse='concat' load whatever they say;
    the constructor's defaults are the bundles' (early, v2, concat)."""
    from pathlib import Path

    from freq_transforms.recipe import recorded_settings

    path = Path(__file__).resolve().parents[1] / "bundles" / "heart_mri_fd_segmentation" / "models" / "model.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    record = recorded_settings(state)  # the backbone the weights were trained with
    backbone, kwargs = (record["backbone"], 1, 2), {"backbone_kwargs": record["backbone_kwargs"]}
    FrequencyDisentangledNet(*backbone, **kwargs).load_state_dict(state)
    other_settings = {"fusion": "early", "arch": "v2", "fuse": "spectral", "features": 4}
    FrequencyDisentangledNet(*backbone, **other_settings, **kwargs).load_state_dict(state)
    with pytest.raises(ValueError, match="cutoff=0.2"):  # the cutoff changes what the weights compute
        FrequencyDisentangledNet(*backbone, cutoff=0.2, **kwargs).load_state_dict(state)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fusion", ["early", "late"])
def test_learnable_cutoff_trains_with_every_layout(arch, fusion):
    """Every fusion x arch trains with a learnable cutoff, and the cutoff receives a gradient (early v2 starts
    with equal band weights, so its cutoff gradient is exactly 0 until one step has set them apart)."""
    torch.manual_seed(0)
    net = FrequencyDisentangledNet("UNet", 1, 3, fusion=fusion, arch=arch, learnable_cutoff=True,
                                   backbone_kwargs=SMALL["UNet"])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.rand(2, 1, 16, 16, 12), torch.randint(0, 3, (2, 16, 16, 12))
    for _ in range(2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    grad = net.split.cutoff_logit.grad
    assert grad is not None and torch.isfinite(grad) and grad.abs() > 0


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fusion", FUSIONS)
def test_gradient_with_respect_to_the_input(arch, fusion):
    """Saliency maps and adversarial tests need d(output)/d(input) through the split."""
    net = FrequencyDisentangledNet("UNet", 1, 3, fusion=fusion, arch=arch, backbone_kwargs=SMALL["UNet"])
    x = torch.rand(1, 1, 16, 16, 12, requires_grad=True)
    net(x)[:, 1].sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and x.grad.abs().sum() > 0


DS_KW = {"kernel_size": (3, 3, 3, 3), "strides": (1, 2, 2, 2), "upsample_kernel_size": (2, 2, 2),
         "filters": (8, 16, 32, 64), "deep_supervision": True, "deep_supr_num": 2}


@pytest.mark.parametrize("fusion", FUSIONS)
def test_deep_supervision_heads_pass_through_and_train_with_monai_loss(fusion):
    """DynUNet with deep supervision stacks its heads as (B, heads, C, ...): FD pads and crops the spatial axes
    (not the head axis) and late v2 corrects every head, so MONAI's DeepSupervisionLoss trains it. Before, the
    crop cut the wrong axes and late fusion raised."""
    from monai.losses import DeepSupervisionLoss, DiceCELoss

    x, y = torch.rand(2, 1, 33, 29, 21), torch.randint(0, 2, (2, 1, 33, 29, 21))
    torch.manual_seed(0)
    net = FrequencyDisentangledNet("DynUNet", 1, 2, fusion=fusion, backbone_kwargs=DS_KW).train()
    out = net(x)
    assert out.shape == (2, 3, 2, 33, 29, 21)
    DeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))(list(torch.unbind(out, 1)), y).backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    if fusion == "early":  # still starts as the plain network, head for head
        torch.manual_seed(0)
        plain = FrequencyDisentangledNet("DynUNet", 1, 2, fusion="none", backbone_kwargs=DS_KW).train()
        torch.testing.assert_close(out, plain(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_a_list_of_heads_keeps_its_form(fusion):
    net = FrequencyDisentangledNet("BasicUNetPlusPlus", 1, 2, fusion=fusion,
                                   backbone_kwargs={"features": (4, 4, 8, 8, 16, 4), "deep_supervision": True})
    out = net(torch.rand(1, 1, 33, 29, 21))
    assert isinstance(out, list) and [o.shape for o in out] == [(1, 2, 33, 29, 21)] * 4


def test_segresnetds_divisor_comes_from_the_network():
    net = FrequencyDisentangledNet("SegResNetDS", 1, 2, backbone_kwargs={"init_filters": 8, "blocks_down": (1, 1, 1, 1)})
    assert net.divisor == [int(f) for f in net.backbone.shape_factor()] == [8, 8, 8]
    assert net(torch.rand(1, 1, 33, 47, 29)).shape == (1, 2, 33, 47, 29)


def test_early_fusion_refuses_a_network_that_adds_its_input_itself():
    """VNet adds its input to its first features (no conv between): split convs cannot start as it."""
    with pytest.raises(ValueError, match="cannot start as VNet: it reads its input other than through convs"):
        FrequencyDisentangledNet("VNet", 1, 2, fusion="early")
    assert FrequencyDisentangledNet("VNet", 1, 2, fusion="late")(torch.rand(1, 1, 33, 32, 17)).shape == (1, 2, 33, 32, 17)


def test_late_v2_corrects_the_full_resolution_head_and_passes_coarser_heads_unchanged():
    """SegResNetDS's coarser deep-supervision heads are not corrected (their grid is coarser than the
    correction's); the full-resolution head is."""
    net = FrequencyDisentangledNet("SegResNetDS", 1, 2, fusion="late",
                                   backbone_kwargs={"init_filters": 8, "blocks_down": (1, 1, 1, 1), "dsdepth": 3})
    with torch.no_grad():
        for parameter in net.correction.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    x = torch.rand(2, 1, 32, 32, 24)
    out = net.train()(x)
    reference = net._run_backbone(net.split(x)[1])
    assert [o.shape[2:] for o in out] == [(32, 32, 24), (16, 16, 12), (8, 8, 6)]
    assert not torch.allclose(out[0], reference[0], atol=1e-3)
    for head, plain in zip(out[1:], reference[1:]):
        torch.testing.assert_close(head, plain)


@pytest.mark.parametrize("fusion", ["none", "early", "late"])
def test_the_output_keeps_the_inputs_metadata_as_monai_networks_do(fusion):
    """SaveImaged names its files from the prediction's metadata (the zoo template's inference): the early split
    wrote its bands into a plain tensor, and the files came out as 0.nii.gz, 1.nii.gz."""
    from monai.data import MetaTensor, list_data_collate

    batch = list_data_collate([{"image": MetaTensor(torch.rand(1, 16, 16, 16), meta={"filename_or_obj": f"img{i}"})}
                               for i in range(2)])["image"]
    net = FrequencyDisentangledNet("UNet", 1, 2, fusion=fusion, backbone_kwargs=SMALL["UNet"]).eval()
    with torch.no_grad():
        out = net(batch)
    assert isinstance(out, MetaTensor) and out.is_batch and out.meta["filename_or_obj"] == ["img0", "img1"]
