"""Deep supervision in the bundles: DynUNet's stacked heads trained through ``heads_loss``."""

import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss

from freq_transforms.lab.phantoms import write_phantom_dataset
from freq_transforms.losses import HeadsLoss
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
