"""The recipe record travels with the weights: a re-save, ``monai.bundle ckpt_export`` (TorchScript) and
``monai.bundle onnx_export`` followed by ``python -m freq_transforms recipe --into`` (ONNX metadata) all carry it,
and :func:`read_recipe` reads it back from each."""

import json
import sys
from pathlib import Path

import pytest
import torch

import cli_runner
from freq_transforms.recipe import read_recipe, weights_with_record, write_recipe_into

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
SMALL = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0}
RECIPE = {"sampling": "resize", "spatial_size": [32, 32, 24], "intensity": "paper", "class_names": ["bg", "a", "p"],
          "bundle": {"name": "hippocampus_mri_fd_segmentation", "version": "0.6.2"}}


def _network():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser["backbone"], parser["backbone_kwargs"] = "UNet", SMALL
    return parser.get_parsed_content("network_def")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "model.pt"
    torch.save(weights_with_record(_network(), **RECIPE), path)
    return path


def _bundle(*args, cwd=BUNDLE):
    overrides = ["--backbone", "UNet", "--backbone_kwargs", json.dumps(SMALL)]
    result = cli_runner.run([sys.executable, "-m", "monai.bundle", *args, *overrides], cwd=cwd, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_recipe_holds_the_network_and_the_training_settings(weights):
    recipe = read_recipe(weights)
    assert {k: recipe[k] for k in RECIPE} == RECIPE
    assert recipe["backbone"] == "UNet" and recipe["backbone_kwargs"] == SMALL and recipe["fusion"] == "early"
    assert recipe["out_channels"] == 3 and recipe["cutoff"] == 0.1


def test_a_resave_after_loading_keeps_the_recipe(weights, tmp_path):
    net = _network()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    torch.save(net.state_dict(), tmp_path / "again.pt")  # what a user or another tool does
    assert read_recipe(tmp_path / "again.pt") == read_recipe(weights)


def test_ckpt_export_carries_the_recipe(weights, tmp_path):
    ts = tmp_path / "model.ts"
    _bundle("ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(weights), "--meta_file",
            "configs/metadata.json", "--config_file", "configs/inference.json")
    assert read_recipe(ts) == read_recipe(weights)
    write_recipe_into(ts, read_recipe(weights))  # also as an extra file, beside MONAI's own
    extra = {"recipe.json": "", "metadata.json": ""}
    torch.jit.load(str(ts), _extra_files=extra)
    assert json.loads(extra["recipe.json"]) == read_recipe(weights) and json.loads(extra["metadata.json"])


@pytest.mark.slow
def test_onnx_export_carries_the_recipe_once_stamped(weights, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx_file = tmp_path / "model.onnx"
    _bundle("onnx_export", "network_def", "--filepath", str(onnx_file), "--ckpt_file", str(weights), "--meta_file",
            "configs/metadata.json", "--config_file", "configs/inference.json", "--input_shape", "[1, 1, 32, 32, 24]")
    assert read_recipe(onnx_file) is None  # MONAI's onnx_export writes no metadata
    stamp = cli_runner.run([sys.executable, "-m", "freq_transforms", "recipe", str(weights), "--into", str(onnx_file)],
                           capture_output=True, text=True, timeout=300)
    assert stamp.returncode == 0, stamp.stderr
    assert read_recipe(onnx_file) == read_recipe(weights)
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["freq_transforms_recipe"])["sampling"] == "resize"


def test_weights_without_a_recipe_say_so_in_one_line(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "plain.pt")
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "recipe", str(tmp_path / "plain.pt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'plain.pt'} carries no freq_transforms recipe "
                                                  "(weights saved by an older version, or not by an FD network)"]
