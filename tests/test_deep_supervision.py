"""Deep supervision in the bundles: DynUNet's stacked heads trained through ``heads_loss``."""

import ast

import pytest
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss

from freq_transforms import FrequencyDisentangledNet
from freq_transforms.networks.checkpoint import load_weights
from freq_transforms.errors import WeightsMismatchError
from freq_transforms.lab.phantoms import write_phantom_dataset
from freq_transforms.networks.losses import HeadsLoss
from freq_transforms.recipe import weights_with_record
from test_members import SMALL, _cli, _ok


def test_a_stack_of_heads_is_weighted_as_monai_weighs_a_list():
    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)
    target = torch.randint(0, 3, (2, 1, 8, 8, 8)).float()
    heads = torch.randn(2, 3, 3, 8, 8, 8)
    expected = DeepSupervisionLoss(dice_ce)(list(torch.unbind(heads, 1)), target)
    torch.testing.assert_close(HeadsLoss(dice_ce)(heads, target), expected)
    torch.testing.assert_close(HeadsLoss(dice_ce)(heads[:, 0], target), dice_ce(heads[:, 0], target))
    assert not torch.allclose(expected, dice_ce(heads[:, 0], target))  # the other heads count


def test_the_bundle_trains_dynunet_with_deep_supervision(tmp_path):
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=6, seed=4, progress=False)
    root = tmp_path / "run"
    kwargs = "{'filters': [8, 16, 32], 'kernel_size': [3, 3, 3], 'strides': [1, 2, 2], " \
             "'upsample_kernel_size': [2, 2], 'deep_supervision': True, 'deep_supr_num': 1}"
    _ok(_cli("run", "training", "--config_file", "configs/train.json", dataset_dir=data, bundle_root=root,
             epochs=2, val_interval=1, **{**SMALL, "backbone": "DynUNet", "backbone_kwargs": kwargs}))
    rows = (root / "eval" / "validation_metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # validation (eval mode: the main head alone) after each epoch
    assert (root / "models" / "model.pt").is_file()
    _exports_to_torchscript_without_the_heads(root, kwargs)


def _exports_to_torchscript_without_the_heads(root, kwargs: str) -> None:
    """DynUNet with deep supervision cannot be scripted; built without the heads it can, and computes what the
    trained network computes in eval mode (the main head)."""
    plain = kwargs.replace("'deep_supervision': True", "'deep_supervision': False")
    export = root / "models" / "model.ts"
    _ok(_cli("ckpt_export", "network_def", "--filepath", str(export), "--ckpt_file", str(root / "models" / "model.pt"),
             "--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json",
             **{**SMALL, "backbone": "DynUNet", "backbone_kwargs": plain}))
    with_heads = FrequencyDisentangledNet("DynUNet", 1, 3, fusion="early", arch="v2",
                                          backbone_kwargs=ast.literal_eval(kwargs))
    load_weights(with_heads, root / "models" / "model.pt")
    x = torch.rand(1, 1, 32, 32, 24)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(export), map_location="cpu")(x), with_heads.eval()(x),
                                   atol=1e-4, rtol=1e-4)


def test_weights_with_heads_load_into_a_network_without_them_and_not_the_reverse(tmp_path):
    small = {"filters": [8, 16, 32], "kernel_size": [3, 3, 3], "strides": [1, 2, 2], "upsample_kernel_size": [2, 2]}

    def net(**extra):
        return FrequencyDisentangledNet("DynUNet", 1, 3, fusion="early", arch="v2", backbone_kwargs={**small, **extra})

    trained, plain = net(deep_supervision=True, deep_supr_num=1), net(deep_supervision=False)
    torch.save(weights_with_record(trained), tmp_path / "heads.pt")
    torch.save(weights_with_record(plain), tmp_path / "plain.pt")
    load_weights(plain, tmp_path / "heads.pt")  # the heads are dropped
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x), trained.eval()(x))
    with pytest.raises(WeightsMismatchError, match="backbone_kwargs"):  # no heads to give a network that trains them
        load_weights(net(deep_supervision=True, deep_supr_num=1), tmp_path / "plain.pt")
    with pytest.raises(WeightsMismatchError, match="backbone_kwargs"):  # other layers still stop the load
        load_weights(FrequencyDisentangledNet("DynUNet", 1, 3, fusion="early", arch="v2",
                                              backbone_kwargs={**small, "filters": [8, 16, 64]}), tmp_path / "heads.pt")
