"""Fold ensembles trained through the bundle (``members``/``member``), training on the validation part too
(``train_on_val``) and a budget fixed in steps (``steps``): the split each member gets, the final weights kept,
and ``--ensemble true`` on what the members leave behind."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cli_runner
from freq_transforms.data.splits import split_datalist
from freq_transforms.errors import DataError
from freq_transforms.handlers import BestModelSaver, SaveIfNeverValidated
from freq_transforms.lab.phantoms import write_phantom_dataset
from test_handlers import _evaluator, _trainer

ROOT = Path(__file__).resolve().parents[1]
HIPPO = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
SMALL = {"spatial_size": "[32,32,24]", "num_workers": "0", "cache_rate": "0", "backbone": "UNet",
         "backbone_kwargs": "{'channels': [4, 8, 16], 'strides': [2, 2], 'num_res_units': 1}"}


def _cases(n: int):
    return [{"image": f"img{i:02d}.nii.gz", "label": f"lab{i:02d}.nii.gz"} for i in range(n)]


def _images(part):
    return sorted(item["image"] for item in part)


def test_members_cut_the_train_part_into_held_out_folds():
    items = _cases(40)
    whole = split_datalist(items, (30, 5, 5))
    splits = [split_datalist(items, (30, 5, 5), members=5, member=k) for k in range(5)]
    held_out = [_images(s["val"]) for s in splits]
    assert sorted(sum(held_out, [])) == _images(whole["train"])  # every train case held out exactly once
    assert all(len(fold) == len(whole["train"]) // 5 for fold in held_out)
    for split, fold in zip(splits, held_out):
        assert _images(split["test"]) == _images(whole["test"])  # the test part never moves
        assert not set(_images(split["train"])) & set(fold)
        assert sorted(_images(split["train"]) + fold) == _images(whole["train"])


def test_train_on_val_trains_on_every_case_outside_the_test_part():
    items = _cases(40)
    whole = split_datalist(items, (30, 5, 5))
    joined = split_datalist(items, (30, 5, 5), train_on_val=True)
    assert _images(joined["train"]) == sorted(_images(whole["train"]) + _images(whole["val"]))
    assert _images(joined["val"]) == _images(whole["val"]) and _images(joined["test"]) == _images(whole["test"])
    members = [split_datalist(items, (30, 5, 5), train_on_val=True, members=4, member=k)["val"] for k in range(4)]
    assert sorted(sum(map(_images, members), [])) == _images(joined["train"])


def test_a_duplicated_image_stays_in_one_members_fold():
    items = _cases(20)
    train = split_datalist(items, (16, 2, 2))["train"]
    index = {item["image"]: i for i, item in enumerate(items)}
    pair = [index[train[0]["image"]], index[train[1]["image"]]]
    for k in range(4):
        held_out = _images(split_datalist(items, (16, 2, 2), groups=[pair], members=4, member=k)["val"])
        assert (items[pair[0]]["image"] in held_out) == (items[pair[1]]["image"] in held_out)


def test_member_out_of_range_is_one_line():
    with pytest.raises(DataError, match="member must be in 0..2 for members=3"):
        split_datalist(_cases(20), members=3, member=3)


def test_a_fixed_budget_keeps_the_final_weights_not_the_best(tmp_path):
    net = torch.nn.Linear(2, 1)
    saver = BestModelSaver(str(tmp_path), net)
    saver(_evaluator(0.9))
    with torch.no_grad():
        net.weight.add_(1.0)
    _trainer(1, [SaveIfNeverValidated(saver, final=True)])
    state = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=True)
    torch.testing.assert_close(state["weight"], net.weight)


def _cli(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", *args]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cli_runner.run(cmd, cwd=HIPPO, capture_output=True, text=True, timeout=600)


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_two_members_train_with_a_step_budget_and_evaluate_as_an_ensemble(tmp_path):
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=8, seed=3, progress=False)
    root = tmp_path / "run"
    common = {"dataset_dir": data, "bundle_root": root, **SMALL}
    for k in (0, 1):  # 3 steps in epochs of 2: rounded up to 2 whole epochs, 4 steps
        _ok(_cli("run", "training", "--config_file", "configs/train.json", members=2, member=k, steps=3,
                 iterations_per_epoch=2, val_interval=1, **common))
        split = json.loads((root / "eval" / f"fold{k}" / "split.json").read_text())
        assert split["members"] == 2 and split["member"] == k and split["counts"]["val"] >= 1
        rows = (root / "eval" / f"fold{k}" / "validation_metrics.csv").read_text().splitlines()[1:]
        assert [int(row.split(",")[1]) for row in rows] == [2, 4]  # the budget, in steps
    assert sorted(p.relative_to(root).as_posix() for p in root.glob("models/**/model.pt")) == \
        ["models/fold0/model.pt", "models/fold1/model.pt"]  # no models/model.pt: evaluation takes a member's recipe
    held_out = [json.loads((root / "eval" / f"fold{k}" / "split.json").read_text())["val"] for k in (0, 1)]
    assert not {c["image"] for c in held_out[0]} & {c["image"] for c in held_out[1]}

    _ok(_cli("run", "evaluating", "--config_file", "['configs/train.json','configs/evaluate.json']",
             ensemble="True", **common))
    raw = (root / "eval" / "test_mean_dice_raw.csv").read_text().splitlines()
    assert len(raw) == 1 + split["counts"]["test"]
    failed = _cli("run", "evaluating", "--config_file", "['configs/train.json','configs/evaluate.json']", **common)
    assert failed.returncode != 0 and "model.pt" in failed.stdout + failed.stderr  # one model asked, none there
