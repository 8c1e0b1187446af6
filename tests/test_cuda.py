"""GPU paths: AMP training of every FD model, inference, and CUDA weights used on CPU.

Marked ``cuda`` and skipped without a GPU; where one is present run them with ``pytest -m cuda``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.losses import DiceCELoss

from freq_transforms import FrequencyDisentangledNet
from freq_transforms.networks.checkpoint import load_weights
from freq_transforms.lab.phantoms import write_phantom_dataset
from freq_transforms.recipe import weights_with_record

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ROOT = Path(__file__).resolve().parents[1]
MODELS = [("none", "v2", "concat"), ("early", "v2", "concat"), ("late", "v2", "concat")] + \
         [(fusion, "paper", fuse) for fusion in ("early", "late") for fuse in ("spectral", "concat", "add")]


@pytest.mark.parametrize("fusion,arch,fuse", MODELS)
def test_amp_train_step_on_a_size_cufft_half_precision_rejects(fusion, arch, fuse):
    """64x64x48: 48 is not a power of two, which cuFFT's float16 refuses; the split must stay float32."""
    torch.manual_seed(0)
    net = FrequencyDisentangledNet("UNet", 1, 3, fusion=fusion, arch=arch, fuse=fuse).cuda()
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cuda")
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
    x = torch.rand(2, 1, 64, 64, 48, device="cuda")
    y = torch.randint(0, 3, (2, 1, 64, 64, 48), device="cuda").float()
    losses = []
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(net(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.parametrize("fusion", ["none", "early", "late"])
def test_amp_inference_matches_float32(fusion):
    torch.manual_seed(0)
    net = FrequencyDisentangledNet("UNet", 1, 2, fusion=fusion, arch="v2").cuda().eval()
    x = torch.rand(1, 1, 160, 160, 128, device="cuda")
    with torch.no_grad():
        full = net(x)
        with torch.autocast("cuda", dtype=torch.float16):
            half = net(x)
    assert half.shape == full.shape
    assert (half.float().argmax(1) == full.argmax(1)).float().mean() > 0.99


def test_cuda_trained_weights_load_and_export_on_cpu(tmp_path):
    bundle = ROOT / "bundles" / "heart_mri_fd_segmentation"
    small = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0}
    net = FrequencyDisentangledNet("UNet", 1, 2, fusion="late", arch="v2", backbone_kwargs=small).cuda()
    path = tmp_path / "model.pt"
    torch.save(weights_with_record(net, spatial_size=[32, 32, 24]), path)
    cpu_net = FrequencyDisentangledNet("UNet", 1, 2, fusion="late", arch="v2", backbone_kwargs=small)
    load_weights(cpu_net, path, map_location="cpu")
    assert all(p.device.type == "cpu" for p in cpu_net.parameters())
    ts = tmp_path / "model.ts"
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file",
           str(path), "--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json",
           "--fusion", "late", "--arch", "v2", "--backbone_kwargs", str(small)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the export runs where no GPU is visible
    result = subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    x = torch.rand(1, 1, 32, 32, 24)
    torch.testing.assert_close(torch.jit.load(str(ts), map_location="cpu")(x), cpu_net.eval()(x), atol=1e-4, rtol=1e-4)


def test_bench_synchronises_the_device():
    from freq_transforms.lab.bench import inference_times, train_step_times

    times = train_step_times((32, 32, 32), repeats=2, batch=1)
    assert all(t > 0 for t in times.values())
    assert all(t > 0 for task in inference_times(1).values() for t in task.values())


def _bundle(*args: str, env: dict, **overrides) -> None:
    """``python -m monai.bundle`` in a fresh interpreter (not the suite's forkserver: CUDA must start in the call)."""
    cmd = [sys.executable, "-m", "monai.bundle", *args] + [f"--{k}={v}" for k, v in overrides.items()]
    result = subprocess.run(cmd, cwd=ROOT / "bundles" / "hippocampus_mri_fd_segmentation", capture_output=True,
                            text=True, timeout=600, env={**os.environ, **env})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_hippocampus_default_trains_with_amp_on_cuda_and_evaluates_on_cpu(tmp_path):
    """The bundle's default network (DynUNet with deep supervision inside early v2) through train.json on the GPU
    with AMP, then its checkpoint evaluated through evaluate.json where no GPU is visible."""
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=8, seed=5, progress=False)
    root = tmp_path / "run"
    common = {"dataset_dir": data, "bundle_root": root, "spatial_size": "[32,32,24]", "num_workers": "0",
              "backbone_kwargs": "{'filters': [8, 16, 32, 64], 'deep_supervision': True, 'deep_supr_num': 2}"}
    _bundle("run", "training", "--config_file", "configs/train.json", env={}, epochs=3, val_interval=1, amp="True",
            **common)
    rows = (root / "eval" / "validation_metrics.csv").read_text().splitlines()
    dice = [float(row.split(",")[-1]) for row in rows[1:]]
    assert len(dice) == 3 and all(0.0 <= d <= 1.0 for d in dice)
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert any("deep_supervision_heads" in key for key in state)  # the extra heads were trained and saved
    _bundle("run", "--config_file", "['configs/train.json','configs/evaluate.json']", env={"CUDA_VISIBLE_DEVICES": ""},
            output_dir=tmp_path / "eval_cpu", **common)
    assert (tmp_path / "eval_cpu" / "test_mean_dice_raw.csv").is_file()
