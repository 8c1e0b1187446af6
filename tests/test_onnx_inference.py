"""Averaged prediction (fold ensemble, test-time mirroring) and ``configs/inference_onnx.json``: onnxruntime labels
equal torch's on phantoms, except where torch's two most probable classes tie within 1e-4."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

onnxruntime = pytest.importorskip("onnxruntime")

from freq_transforms.errors import DataError  # noqa: E402
from freq_transforms.lab.phantoms import write_phantom_dataset  # noqa: E402
from freq_transforms.networks import MeanProbabilities, averaged_network, mirror_flips  # noqa: E402
from freq_transforms.recipe import weights_with_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASK_OF = {"dentate_nucleus_qsm_fd_segmentation": "dentate_nucleus", "heart_mri_fd_segmentation": "heart",
           "hippocampus_mri_fd_segmentation": "hippocampus", "red_nucleus_qsm_fd_segmentation": "red_nucleus",
           "spleen_ct_fd_segmentation": "spleen"}
TIE = 1e-4  # trained weights: labels may differ only where torch's two best classes are this close
# fresh random weights (bundles that ship none): onnxruntime's and torch's convolutions round differently by up to
# 4e-4 in the logits of a 96^3 window of the spleen bundle, so its near-ties reach further than 1e-4
FRESH_TIE = 5e-4


def _conv_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 3, 3, padding=1))


def test_mirroring_makes_the_prediction_mirror_equivariant_and_stays_a_distribution():
    net = _conv_net(0)
    x = torch.rand(1, 1, 10, 9, 8)
    averaged = MeanProbabilities([net], mirror_axes=(0, 1, 2))
    with torch.no_grad():
        out = averaged(x)
        flipped = averaged(torch.flip(x, [2, 4]))
        plain = net(x)
    assert mirror_flips([2, 0, 2]) == [(), (0,), (2,), (0, 2)]
    assert torch.allclose(out.exp().sum(1), torch.ones(1, 10, 9, 8), atol=1e-5)
    assert torch.allclose(torch.flip(flipped, [2, 4]), out, atol=1e-5)  # mirror in, mirror out
    assert not torch.allclose(torch.flip(net(torch.flip(x, [2, 4])), [2, 4]), plain, atol=1e-3)  # the net alone is not


def test_an_ensemble_averages_probabilities_and_one_member_is_the_member():
    first, second = _conv_net(0), _conv_net(1)
    x = torch.rand(2, 1, 8, 8, 8)
    with torch.no_grad():
        single = MeanProbabilities([first])(x)
        pair = MeanProbabilities([first, second])(x)
        expected = (torch.softmax(first(x), 1) + torch.softmax(second(x), 1)) / 2
        assert torch.allclose(single, torch.log_softmax(first(x), 1), atol=1e-5)
        assert torch.allclose(pair.exp(), expected, atol=1e-6)
    assert averaged_network(first) is first  # neither: the network itself, unchanged


def test_an_ensemble_without_fold_models_is_one_line(tmp_path):
    with pytest.raises(DataError, match=r"^ensemble: no fold\*/model.pt under .*; train the folds or pass --ensemble False$"):
        averaged_network(_conv_net(0), ensemble=True, models_dir=str(tmp_path))


def test_an_ensemble_retrained_as_one_model_runs_that_model_with_a_warning(tmp_path, caplog):
    import logging

    torch.save(_conv_net(0).state_dict(), tmp_path / "model.pt")  # what training leaves: fold*/ set aside
    network = _conv_net(0)
    with caplog.at_level(logging.WARNING):
        assert averaged_network(network, ensemble=True, models_dir=str(tmp_path)) is network
        mirrored = averaged_network(network, tta=True, ensemble=True, models_dir=str(tmp_path), mirror_axes=[0])
    assert isinstance(mirrored, MeanProbabilities) and len(mirrored.members) == 1 and len(mirrored.flips) == 2
    assert "no fold*/model.pt under" in caplog.text and "its model.pt runs alone" in caplog.text


def _bundle_with_weights(name: str, tmp_path: Path, folds: int = 0) -> Path:
    """A copy of the bundle with its shipped weights, or fresh ones (and ``folds`` perturbed fold models)."""
    from monai.bundle import ConfigParser

    bundle = tmp_path / name
    shutil.copytree(ROOT / "bundles" / name, bundle)
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def")
    if (bundle / "models" / "model.pt").is_file():
        net.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True))
    else:
        (bundle / "models").mkdir(exist_ok=True)
        torch.save(weights_with_record(net), bundle / "models" / "model.pt")
    for fold in range(folds):
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.add_(0.01 * torch.randn_like(parameter))
        (bundle / "models" / f"fold{fold}").mkdir()
        torch.save(weights_with_record(net), bundle / "models" / f"fold{fold}" / "model.pt")
    return bundle


@pytest.mark.slow
def test_the_bundle_inferer_serves_the_ensemble_as_monai_label_calls_it(tmp_path):
    """MONAI Label's BundleInferTask builds ``network_def``, loads ``models/model.pt`` into it (not strictly) and
    calls the config's ``inferer`` with it: that must be the members averaged, and follow the files on disk."""
    from monai.bundle import ConfigParser

    bundle = _bundle_with_weights("heart_mri_fd_segmentation", tmp_path)  # ships two members
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.update({"bundle_root": str(bundle), "sampling": "resize", "device": "cpu", "ensemble": True})
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True),
                            strict=False)
    inferer = parser.get_parsed_content("inferer")
    members = [parser.get_parsed_content("network_def", lazy=False) for _ in range(2)]
    for k, member in enumerate(members):
        member.load_state_dict(torch.load(bundle / "models" / f"fold{k}" / "model.pt", weights_only=True))
    x = torch.rand(1, 1, *parser["spatial_size"])
    with torch.no_grad():
        served = inferer(x, network.eval())
        expected = sum(torch.softmax(m.eval()(x), 1) for m in members) / 2
        alone = torch.softmax(network(x), 1)
        assert torch.allclose(served.exp(), expected, atol=1e-5)
        assert not torch.allclose(served.exp(), alone, atol=1e-3)  # not model.pt alone
        assert inferer(x, network).equal(served)  # kept between calls...
        shutil.move(str(bundle / "models" / "fold1"), str(tmp_path / "set_aside"))  # ...until the files change
        assert torch.allclose(inferer(x, network).exp(), torch.softmax(members[0](x), 1), atol=1e-5)


def _export(bundle: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "freq_transforms", "onnx", str(bundle), *args], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _parser(bundle: Path, files, overrides):
    from freq_transforms.bundle.configs import bundle_parser

    return bundle_parser(bundle, [bundle / "configs" / f for f in files], overrides)


def _probabilities(parser, x: torch.Tensor) -> torch.Tensor:
    """As the bundle predicts: its ``inferer`` (averaging in torch; the exported graph averages in onnxruntime)
    around its ``network``."""
    with torch.no_grad():
        return torch.softmax(parser.get_parsed_content("inferer")(x, parser.get_parsed_content("network").eval()), 1)[0]


def _labels_and_ties(bundle: Path, image: Path, overrides) -> tuple:
    """Torch's and onnxruntime's labels of one case through the bundle's preprocessing and inferer, the margin
    between torch's two most probable classes per voxel, and the largest probability difference."""
    from freq_transforms.networks.checkpoint import load_weights

    torch_parser = _parser(bundle, ["inference.json"], overrides)
    onnx_parser = _parser(bundle, ["inference.json", "inference_onnx.json"], overrides)
    load_weights(torch_parser.get_parsed_content("network"), bundle / "models" / "model.pt")
    data = torch_parser.get_parsed_content("preprocessing")({"image": str(image)})
    x = data["image"][None]
    p_torch, p_onnx = _probabilities(torch_parser, x), _probabilities(onnx_parser, x)
    top2 = torch.topk(p_torch, 2, dim=0).values
    return p_torch.argmax(0), p_onnx.argmax(0), top2[0] - top2[1], float((p_torch - p_onnx).abs().max())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TASK_OF))
def test_onnxruntime_labels_equal_torch_labels_in_every_bundle(name, tmp_path):
    shipped = (ROOT / "bundles" / name / "models" / "model.pt").is_file()
    bundle = _bundle_with_weights(name, tmp_path)
    _export(bundle)
    data = write_phantom_dataset(TASK_OF[name], tmp_path / "data", n=1, seed=3, shape=[40, 44, 36], progress=False)
    image = next((data / "imagesTr").iterdir())
    # fresh weights carry no training spacing: patch-mode bundles are given one, as a user would
    torch_labels, onnx_labels, margin, most = _labels_and_ties(bundle, image,
                                                               {} if shipped else {"target_spacing": [1, 1, 1]})
    differ = torch_labels != onnx_labels
    tie = TIE if shipped else FRESH_TIE
    print(f"{name}: {int(differ.sum())} of {differ.numel()} voxels differ ({int((margin < TIE).sum())} ties within "
          f"{TIE}); probabilities differ by at most {most:.1e}")
    assert most < 1e-3
    assert not bool((differ & (margin >= tie)).any())


@pytest.mark.slow
def test_inference_onnx_runs_the_ensemble_with_mirroring_and_refuses_another_export(tmp_path):
    """The whole inference config in onnxruntime, as a user runs it, against the torch inference config."""
    bundle = _bundle_with_weights("hippocampus_mri_fd_segmentation", tmp_path, folds=2)
    _export(bundle, "--tta", "true", "--ensemble", "true")
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=2, seed=5, progress=False)
    outputs = {}
    for name, files in (("torch", "['configs/inference.json']"),
                        ("onnx", "['configs/inference.json','configs/inference_onnx.json']")):
        outputs[name] = tmp_path / name
        done = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", files, "--bundle_root",
                               str(bundle), "--input_dir", str(data / "imagesTr"), "--output_dir", str(outputs[name]),
                               "--tta", "True", "--ensemble", "True"], cwd=bundle, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    import nibabel as nib

    for path in sorted(outputs["torch"].glob("*.nii.gz")):
        mine = np.asarray(nib.load(str(outputs["onnx"] / path.name)).dataobj)
        assert (np.asarray(nib.load(str(path)).dataobj) != mine).mean() < 1e-4
    assert len(list(outputs["onnx"].glob("*.nii.gz"))) == 2
    refused = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                              "['configs/inference.json','configs/inference_onnx.json']", "--bundle_root", str(bundle),
                              "--input_dir", str(data / "imagesTr"), "--output_dir", str(tmp_path / "refused")],
                             cwd=bundle, capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and not (tmp_path / "refused").exists()
    assert "was exported with tta=True, the config asks tta=False: export again with python -m freq_transforms onnx " \
           "<bundle_root> --tta false, or pass --tta true" in refused.stderr + refused.stdout
    recorded = onnxruntime.InferenceSession(str(bundle / "models" / "model.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(recorded["freq_transforms_prediction"])["members"] == 2


def test_an_export_mirrored_along_other_axes_is_refused_in_one_line(tmp_path):
    from freq_transforms.bundle.onnx_inference import PREDICTION_KEY, OnnxRuntimeNetwork
    from freq_transforms.recipe import write_onnx_metadata

    path = tmp_path / "mirrored.onnx"
    torch.onnx.export(MeanProbabilities([_conv_net(0)], (0,)).eval(), (torch.rand(1, 1, 8, 8, 8),), str(path),
                      input_names=["image"], dynamic_axes={"image": {0: "batch"}}, dynamo=False)
    write_onnx_metadata(path, {PREDICTION_KEY: json.dumps({"tta": True, "tta_axes": [0], "ensemble": False})})
    network = OnnxRuntimeNetwork(str(path), expect={"tta": True, "tta_axes": [0], "ensemble": False})
    x = torch.rand(2, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.allclose(network(x), MeanProbabilities([_conv_net(0)], (0,))(x), atol=1e-5)  # batch 2 too
    with pytest.raises(DataError, match=r"was exported with tta_axes=\[0\], the config asks tta_axes=\[0, 1, 2\]: "
                                        r"export again with .* --tta_axes \[0, 1, 2\], or pass --tta_axes \[0\]$"):
        OnnxRuntimeNetwork(str(path), expect={"tta": True, "tta_axes": (0, 1, 2)})
