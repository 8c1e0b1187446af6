"""ONNX export through ``python -m monai.bundle onnx_export``: every bundle in its default mode and the overlaid zoo
spleen bundle, run in onnxruntime against torch on a size that is not a power of two."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

onnxruntime = pytest.importorskip("onnxruntime")

from freq_transforms.recipe import weights_with_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p.name for p in (ROOT / "bundles").iterdir() if (p / "configs").is_dir())
ZOO_SPLEEN = ROOT.parent / "shared" / "zoo" / "spleen_ct_segmentation"
SHAPE = [1, 1, 36, 44, 29]


def _network(bundle: Path, configs, overrides=None):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(bundle / c) for c in configs])
    parser["bundle_root"] = str(bundle)
    for key, value in (overrides or {}).items():
        parser[key] = value
    torch.manual_seed(0)
    return parser.get_parsed_content("network_def")


def _export(bundle: Path, configs, ckpt: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    files = "['" + "','".join(configs) + "']"
    cmd = [sys.executable, "-m", "monai.bundle", "onnx_export", "network_def", "--filepath", str(out),
           "--ckpt_file", str(ckpt), "--meta_file", "configs/metadata.json", "--config_file", files,
           "--input_shape", str(SHAPE), *extra]
    return subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(bundle)})


def _compare(onnx_file: Path, net: torch.nn.Module) -> float:
    """Largest difference of onnxruntime's logits from torch's, relative to the logits' scale (at least 1).

    Relative, because float32 rounding grows with the logits: trained weights give logits of 6-8 on random input and
    differences near 1e-4 that a fresh network's logits of about 1 do not; a wrong export differs by far more.
    """
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = torch.rand(*SHAPE, generator=torch.Generator().manual_seed(0))
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        expected = net.eval()(x)
    return float((got - expected).abs().max() / max(1.0, float(expected.abs().max())))


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLES)
def test_every_bundle_exports_to_onnx_and_onnxruntime_matches_torch(name, tmp_path):
    bundle = ROOT / "bundles" / name
    net = _network(bundle, ["configs/inference.json"])
    ckpt = bundle / "models" / "model.pt"
    if ckpt.is_file():
        net.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    else:  # a bundle without shipped weights: fresh ones, as training would save them
        ckpt = tmp_path / "model.pt"
        torch.save(weights_with_record(net), ckpt)
    result = _export(bundle, ["configs/inference.json"], ckpt, tmp_path / "model.onnx")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _compare(tmp_path / "model.onnx", net) < 1e-4


@pytest.mark.slow
@pytest.mark.usefixtures("zoo")  # fails, not skips, without ../shared/zoo
def test_overlaid_zoo_spleen_exports_to_onnx(tmp_path):
    from freq_transforms.bundle.overlay import OVERLAY_FILE, write_overlay

    bundle = tmp_path / "spleen"
    shutil.copytree(ZOO_SPLEEN, bundle)
    write_overlay(bundle)
    net = _network(bundle, ["configs/inference.json", OVERLAY_FILE])
    torch.save(net.state_dict(), tmp_path / "model.pt")
    result = _export(bundle, ["configs/inference.json", OVERLAY_FILE], tmp_path / "model.pt", tmp_path / "fd.onnx")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _compare(tmp_path / "fd.onnx", net) < 1e-4


def test_an_fft_setting_says_in_one_line_that_onnx_cannot_export_it(tmp_path):
    bundle = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
    net = _network(bundle, ["configs/inference.json"], {"mask": "ball"})
    torch.save(weights_with_record(net), tmp_path / "model.pt")
    result = _export(bundle, ["configs/inference.json"], tmp_path / "model.pt", tmp_path / "ball.onnx",
                     "--mask", "ball")
    assert result.returncode != 0 and not (tmp_path / "ball.onnx").exists()
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: ONNX export: mask='ball', centered=True, learnable_cutoff=False needs an FFT, which ONNX cannot "
        "express; export with mask='box', centered=True, a fixed cutoff and (arch='paper') fuse='concat' or 'add'")


@pytest.mark.slow
def test_late_v2_exports_to_onnx_and_onnxruntime_matches_torch(tmp_path):
    """Late v2's low-band correction (pool, head, interpolate) on a size no stride divides, with trained-looking
    (non-zero) correction weights so that its path is what is compared."""
    bundle = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
    net = _network(bundle, ["configs/inference.json"], {"fusion": "late"})
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in net.correction.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    x = torch.rand(*SHAPE)
    low, high = net.split(x)
    with torch.no_grad():
        assert float((net.eval()(x) - net._run_backbone(high)).abs().max()) > 1e-3  # the correction adds something
    torch.save(weights_with_record(net), tmp_path / "model.pt")
    result = _export(bundle, ["configs/inference.json"], tmp_path / "model.pt", tmp_path / "late.onnx",
                     "--fusion", "late")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _compare(tmp_path / "late.onnx", net) < 1e-4
