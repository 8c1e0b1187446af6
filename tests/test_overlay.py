"""FD as an overlay on model-zoo segmentation bundles: the two real zoo bundles in ../shared/zoo end to end, and
networks the zoo uses (2-D, multi-channel, SegResNet, SwinUNETR, a bundle's own scripts/ network)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cli_runner
from freq_transforms.bundle.overlay import OVERLAY_FILE, write_overlay
from freq_transforms.lab.phantoms import write_image_label_pairs, write_phantom_dataset

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT.parent / "shared" / "zoo"
needs_zoo = pytest.mark.usefixtures("zoo")  # fails, not skips, without ../shared/zoo (conftest)


def _bundle(tmp_path: Path, train: dict, name: str = "train.json", scripts: str = "") -> Path:
    root = tmp_path / "bundle"
    (root / "configs").mkdir(parents=True)
    text = json.dumps(train) if name.endswith(".json") else "\n".join(
        f"{k}: {json.dumps(v)}" for k, v in train.items())  # JSON values are valid YAML
    (root / "configs" / name).write_text(text)
    if scripts:
        (root / "scripts").mkdir()
        (root / "scripts" / "__init__.py").write_text("")
        (root / "scripts" / "net.py").write_text(scripts)
    return root


def _parsed(root: Path, files, seed: int = 0):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(root / f) for f in files])
    parser["bundle_root"] = str(root)
    torch.manual_seed(seed)
    return parser.get_parsed_content("network_def")


SCRIPT_NET = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, in_channels=1, out_channels=2):
        super().__init__()
        self.first = nn.Conv3d(in_channels, 8, 3, padding=1)
        self.body = nn.Sequential(nn.InstanceNorm3d(8), nn.ReLU(), nn.Conv3d(8, out_channels, 1))

    def forward(self, x):
        return self.body(self.first(x))
"""

NORM_FIRST_NET = SCRIPT_NET.replace("self.first = nn.Conv3d(in_channels, 8, 3, padding=1)",
                                    "self.norm = nn.BatchNorm3d(in_channels)\n        "
                                    "self.first = nn.Conv3d(in_channels, 8, 3, padding=1)")

BLOCK_NET = """
import torch
from torch import nn

class Net(nn.Module):
    \"\"\"Takes only multiples of its block size (a transformer with patch blocks, like the zoo's UNesT).\"\"\"

    def __init__(self, in_channels=1, out_channels=2, block_size=40):
        super().__init__()
        self.block_size = block_size
        self.first = nn.Conv3d(in_channels, 8, 3, padding=1)
        self.out = nn.Conv3d(8, out_channels, 1)

    def forward(self, x):
        assert all(s % self.block_size == 0 for s in x.shape[2:]), "`block_size` must divide input depth evenly"
        return self.out(torch.relu(self.first(x)))
"""
BLOCK_BUNDLE = {"network_def": {"_target_": "scripts.net.Net"},
                "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [80, 80, 40], "sw_batch_size": 1}}

NETWORKS = {
    "2-D UNet, 4 channels (BraTS-like)": ({"_target_": "UNet", "spatial_dims": 2, "in_channels": 4, "out_channels": 3,
                                           "channels": [8, 16, 32], "strides": [2, 2]}, (1, 4, 32, 32), ""),
    "SegResNet": ({"_target_": "SegResNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                   "init_filters": 8, "blocks_down": [1, 1, 1], "blocks_up": [1, 1]}, (1, 1, 16, 16, 16), ""),
    "SwinUNETR": ({"_target_": "SwinUNETR", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                   "feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [3, 6, 12, 24]}, (1, 1, 64, 64, 64), ""),
    "own scripts/ network": ({"_target_": "scripts.net.Net", "in_channels": 1, "out_channels": 2},
                             (1, 1, 12, 10, 8), SCRIPT_NET),
}


@pytest.mark.parametrize("config_name", ["train.json", "train.yaml"])
@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if k == "SwinUNETR" else k for k in NETWORKS])
def test_early_v2_overlay_starts_as_the_bundles_own_network(kind, config_name, tmp_path):
    network_def, shape, scripts = NETWORKS[kind]
    root = _bundle(tmp_path, {"network_def": network_def}, config_name, scripts)
    sys.path.insert(0, str(root))
    try:
        write_overlay(root)
        plain = _parsed(root, [f"configs/{config_name}"]).eval()
        overlaid = _parsed(root, [f"configs/{config_name}", OVERLAY_FILE]).eval()
    finally:
        sys.path.remove(str(root))
        for module in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
            del sys.modules[module]
    x = torch.rand(*shape)
    with torch.no_grad():
        torch.testing.assert_close(overlaid(x), plain(x), atol=1e-5, rtol=1e-5)
    assert overlaid.in_channels == shape[1] and overlaid.spatial_dims == len(shape) - 2
    assert sorted(p.name for p in (root / "configs").iterdir()) == sorted([config_name, "fd_overlay.json"])


@pytest.mark.parametrize("train,line", [
    ({"imports": ["$import torch"], "network": "$torch.nn.Identity()"}, "has no network_def component"),
    ({"network_def": {"_target_": "scripts.net.Net"}}, "(norm: BatchNorm3d) is not a 2-D or 3-D convolution"),
    ({"network_def": {"_target_": "scripts.net.Net"}, "network": {"_target_": "scripts.net.Net"}},
     "does not use network_def"),
])
def test_a_bundle_that_cannot_be_overlaid_says_why_in_one_line_and_writes_nothing(train, line, tmp_path):
    root = _bundle(tmp_path, train, scripts=NORM_FIRST_NET)
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "overlay", str(root)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ") and line in result.stderr
    assert sorted(p.name for p in (root / "configs").iterdir()) == ["train.json"]
    for module in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        del sys.modules[module]


def _forget_scripts() -> None:
    for module in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        del sys.modules[module]


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_a_network_of_block_multiples_is_wrapped_at_the_bundles_own_input_size(fusion, tmp_path):
    """No growing probe size (16 ... 128) is a multiple of 40: only the bundle's roi_size finds one it takes."""
    root = _bundle(tmp_path, BLOCK_BUNDLE, scripts=BLOCK_NET)
    try:
        write_overlay(root, fusion=fusion)
        overlay = json.loads((root / OVERLAY_FILE).read_text())
        assert overlay["network_def"]["probe_size"] == [80, 80, 40]
        plain = _parsed(root, ["configs/train.json"], seed=2).eval()
        overlaid = _parsed(root, ["configs/train.json", OVERLAY_FILE], seed=2).eval()
    finally:
        _forget_scripts()
    x = torch.rand(1, 1, 80, 80, 40)
    with torch.no_grad():
        expected = plain(x) if fusion == "early" else plain(overlaid.split(x)[1])
        torch.testing.assert_close(overlaid(x), expected, atol=1e-5, rtol=1e-5)


def test_a_network_fd_cannot_wrap_is_refused_by_building_it_and_nothing_is_written(tmp_path):
    """FlexibleUNet with an EfficientNet encoder pads the image before its first conv: early v2 has no conv to
    split. The first-layer check passes; building the overlay says why not."""
    network_def = {"_target_": "FlexibleUNet", "in_channels": 1, "out_channels": 2, "backbone": "efficientnet-b0",
                   "spatial_dims": 2, "pretrained": False}
    root = _bundle(tmp_path, {"network_def": network_def})
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "overlay", str(root)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "fusion='early' cannot wrap" in result.stderr and "found no conv reading the input" in result.stderr
    assert sorted(p.name for p in (root / "configs").iterdir()) == ["train.json"]
    write_overlay(root, fusion="late")  # late fusion runs the network on the high band as it is
    assert json.loads((root / OVERLAY_FILE).read_text())["network_def"]["fusion"] == "late"


def test_an_overlay_beside_trained_weights_is_not_overwritten_with_other_settings(tmp_path):
    network_def, _, _ = NETWORKS["SegResNet"]
    root = _bundle(tmp_path, {"network_def": network_def})
    write_overlay(root, fusion="early")
    (root / "models").mkdir()
    torch.save(_parsed(root, ["configs/train.json", OVERLAY_FILE]).state_dict(), root / "models" / "model.pt")
    before = (root / OVERLAY_FILE).read_text()
    write_overlay(root, fusion="early")  # the same settings: nothing to lose
    from freq_transforms.bundle.overlay import OverlayError

    with pytest.raises(OverlayError, match=r"fusion 'early' -> 'late'.*models/model.pt.*--force") as info:
        write_overlay(root, fusion="late")
    assert "\n" not in str(info.value) and (root / OVERLAY_FILE).read_text() == before
    write_overlay(root, fusion="late", force=True)
    assert json.loads((root / OVERLAY_FILE).read_text())["network_def"]["fusion"] == "late"


def test_weights_of_other_overlay_settings_name_the_override_that_loads_them(tmp_path):
    from monai.bundle import ConfigParser

    from freq_transforms.errors import WeightsMismatchError

    network_def, _, _ = NETWORKS["SegResNet"]
    root = _bundle(tmp_path, {"network_def": network_def})
    write_overlay(root, fusion="early")
    state = _parsed(root, ["configs/train.json", OVERLAY_FILE]).state_dict()
    write_overlay(root, fusion="late")
    with pytest.raises(WeightsMismatchError, match=r"pass --network_def#fusion early, or re-run python -m "
                                                   r"freq_transforms overlay <bundle_root> --fusion early --force"):
        _parsed(root, ["configs/train.json", OVERLAY_FILE]).load_state_dict(state)
    parser = ConfigParser()  # the override it names loads them
    parser.read_config([str(root / "configs/train.json"), str(root / OVERLAY_FILE)])
    parser["network_def#fusion"] = "early"
    parser.get_parsed_content("network_def").load_state_dict(state)


def test_late_v2_overlay_adds_a_correction_that_starts_at_zero(tmp_path):
    network_def, shape, _ = NETWORKS["SegResNet"]
    root = _bundle(tmp_path, {"network_def": network_def})
    write_overlay(root, fusion="late")
    net = _parsed(root, ["configs/train.json", OVERLAY_FILE]).eval()
    assert torch.count_nonzero(net.correction.out.conv.weight) == 0
    x = torch.rand(*shape)
    low, high = net.split(x)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.backbone(high))


# ---- the real zoo bundles, end to end ----


def _zoo_copy(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(ZOO / name, root)
    return root


def _run(root: Path, configs, *args: str, torchrun: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    files = "['" + "','".join(configs) + "']"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun \
        else [sys.executable]
    cmd = [*launcher, "-m", "monai.bundle", "run", "--config_file", files, "--meta_file", "configs/metadata.json",
           "--bundle_root", str(root), *args]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _bundle_cli(root: Path, command: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monai.bundle", command, *args], cwd=root, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(root)})


def _verify_and_export(root: Path, train: str, ts_file: Path, x: torch.Tensor) -> torch.nn.Module:
    """``verify_net_in_out`` and ``ckpt_export`` of the overlaid network with its trained ``models/model.pt``; the
    TorchScript file must compute what the eager network does. Returns the eager network with those weights."""
    configs = f"['{train}','{OVERLAY_FILE}']"
    verified = _bundle_cli(root, "verify_net_in_out", "network_def", "--meta_file", "configs/metadata.json",
                           "--config_file", configs)
    assert verified.returncode == 0, verified.stderr[-3000:]
    exported = _bundle_cli(root, "ckpt_export", "network_def", "--filepath", str(ts_file), "--ckpt_file",
                           "models/model.pt", "--meta_file", "configs/metadata.json", "--config_file", configs)
    assert exported.returncode == 0, exported.stderr[-3000:]
    net = _parsed(root, [train, OVERLAY_FILE])
    net.load_state_dict(torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(ts_file), map_location="cpu")(x), net.eval()(x),
                                   atol=1e-4, rtol=1e-4)
    return net


SPLEEN_SMALL = ["--epochs", "1", "--train#dataset#num_workers", "0", "--train#dataloader#num_workers", "0",
                "--validate#dataloader#num_workers", "0", "--validate#inferer#sw_batch_size", "1"]


@pytest.fixture(scope="module")
def spleen(tmp_path_factory):
    """The zoo spleen bundle overlaid and trained for one epoch (one iteration) on spleen CT phantoms laid out as
    its configs expect (imagesTr/labelsTr; 38x38x34 at 4x4x6 mm, so 100^3 after its Spacingd; last 9 validate)."""
    tmp = tmp_path_factory.mktemp("spleen")
    root = _zoo_copy("spleen_ct_segmentation", tmp)
    data = write_phantom_dataset("spleen", tmp / "data", n=10, seed=4, shape=[38, 38, 34], progress=False)
    (data / "imagesTs").mkdir()
    for image in sorted((data / "imagesTr").iterdir())[:2]:
        shutil.copy(image, data / "imagesTs" / image.name)
    printed = cli_runner.run([sys.executable, "-m", "freq_transforms", "overlay", str(root)], capture_output=True,
                             text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    _run(root, ["configs/train.json", OVERLAY_FILE], "--dataset_dir", str(data), *SPLEEN_SMALL)
    return root, data, printed.stdout


@pytest.mark.slow
@needs_zoo
def test_spleen_overlay_prints_the_commands_and_changes_nothing_else(spleen):
    root, _, printed = spleen
    assert "python -m monai.bundle run --config_file \"['configs/train.json','configs/fd_overlay.json']\"" in printed
    assert "['configs/train.json','configs/evaluate.json','configs/fd_overlay.json']" in printed
    assert "['configs/inference.json','configs/fd_overlay.json']" in printed
    assert "torchrun" in printed and "['configs/train.json','configs/multi_gpu_train.json'," in printed
    multi_evaluate = "['configs/train.json','configs/evaluate.json','configs/multi_gpu_evaluate.json'," \
                     "'configs/fd_overlay.json']"
    assert f"multi_gpu_evaluate: torchrun --standalone --nnodes=1 --nproc_per_node=<GPUs> -m monai.bundle run " \
           f"--config_file \"{multi_evaluate}\"" in printed
    # the TensorRT config loads an exported network: its line runs without the overlay
    assert "\"['configs/inference.json','configs/inference_trt.json']\"" in printed
    for config in (ZOO / "spleen_ct_segmentation" / "configs").iterdir():
        assert (root / "configs" / config.name).read_bytes() == config.read_bytes()


@pytest.mark.slow
@needs_zoo
def test_spleen_overlay_trains_evaluates_and_infers_with_the_bundles_own_pipeline(spleen):
    from freq_transforms.recipe import recorded_settings

    root, data, _ = spleen
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert recorded_settings(state)["fusion"] == "early" and recorded_settings(state)["overlay"] == OVERLAY_FILE
    _run(root, ["configs/train.json", "configs/evaluate.json", OVERLAY_FILE], "--dataset_dir", str(data),
         "--validate#dataloader#num_workers", "0", "--validate#inferer#sw_batch_size", "1")
    assert (root / "eval" / "val_mean_dice_raw.csv").is_file()
    _run(root, ["configs/inference.json", OVERLAY_FILE], "--dataset_dir", str(data), "--dataloader#num_workers", "0",
         "--amp", "false")
    written = sorted(p.name for p in (root / "eval").rglob("*_trans.nii.gz"))
    assert written == sorted(p.name.replace(".nii.gz", "_trans.nii.gz") for p in (data / "imagesTs").iterdir())


@pytest.mark.slow
@needs_zoo
def test_spleen_overlay_weights_and_plain_weights_do_not_mix(spleen, tmp_path):
    root, data, _ = spleen
    plain_root = tmp_path / "plain"
    shutil.copytree(ZOO / "spleen_ct_segmentation", plain_root)
    (plain_root / "models").mkdir()
    torch.manual_seed(0)
    from monai.networks.nets import UNet

    plain = UNet(3, 1, 2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2, norm="batch")
    torch.save(plain.state_dict(), plain_root / "models" / "model.pt")
    shutil.copy(root / OVERLAY_FILE, plain_root / OVERLAY_FILE)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
           "['configs/train.json','configs/evaluate.json','configs/fd_overlay.json']", "--meta_file",
           "configs/metadata.json", "--bundle_root", str(plain_root), "--dataset_dir", str(data),
           "--validate#dataloader#num_workers", "0"]
    result = cli_runner.run(cmd, cwd=plain_root, capture_output=True, text=True, timeout=300)
    # the evaluate config's StatsHandler logs the exception: without its traceback
    assert result.returncode != 0 and "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "error: these are weights of the bundle's own network, not of its FD overlay configs/fd_overlay.json: load "
        "them without configs/fd_overlay.json in --config_file, or train with it first")


@pytest.mark.slow
@needs_zoo
def test_spleen_overlay_verify_export_and_equality_at_initialisation(spleen, tmp_path):
    root, _, _ = spleen
    x = torch.rand(1, 1, 48, 48, 32)
    _verify_and_export(root, "configs/train.json", tmp_path / "model.ts", x)
    plain = _parsed(ZOO / "spleen_ct_segmentation", ["configs/train.json"], seed=7).eval()
    fresh = _parsed(root, ["configs/train.json", OVERLAY_FILE], seed=7).eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), plain(x), atol=1e-5, rtol=1e-5)


@needs_zoo
@pytest.mark.slow
def test_spleen_overlay_two_process_torchrun(spleen, tmp_path):
    """The zoo's multi-GPU config on 2 CPU processes (gloo instead of NCCL; the zoo config assumes CUDA)."""
    root, data, _ = spleen
    run_root = tmp_path / "ddp"
    shutil.copytree(root / "configs", run_root / "configs")
    init = ["$import torch.distributed as dist", "$dist.is_initialized() or dist.init_process_group(backend='gloo')",
            "$monai.utils.set_determinism(seed=123)"]
    # the zoo's finalize destroys the group without a barrier; on a loaded CI machine one gloo rank then aborted at
    # teardown ("terminate called without an active exception"): end as our own bundles' multi-GPU configs do
    final = ["$from freq_transforms.handlers import leave_process_group", "$leave_process_group()"]
    _run(run_root, ["configs/train.json", "configs/multi_gpu_train.json", OVERLAY_FILE], "--dataset_dir", str(data),
         *SPLEEN_SMALL, "--device", "$torch.device('cpu')", "--network#device_ids", "$None",
         "--initialize", json.dumps(init), "--finalize", json.dumps(final), torchrun=True)
    state = torch.load(run_root / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state) and any(k.startswith("backbone.") for k in state)


@pytest.mark.slow
@needs_zoo
def test_segmentation_template_yaml_overlay_end_to_end(tmp_path):
    """The zoo's segmentation template (YAML, 4 classes, img*/lbl* files): train, test and infer with the overlay."""
    root = _zoo_copy("segmentation_template", tmp_path)
    write_image_label_pairs(root / "train_data", n=5, num_classes=4, shape=(32, 32, 32), seed=0)
    write_image_label_pairs(root / "test_data", n=2, num_classes=4, shape=(32, 32, 32), seed=9)
    write_overlay(root, fusion="late")
    small = ["--num_workers", "0", "--batch_size", "2"]
    _run(root, ["configs/train.yaml", OVERLAY_FILE], "--num_epochs", "1", *small)
    saved = sorted((root / "results").rglob("model_key_metric=*.pt"))
    assert saved, sorted(str(p) for p in (root / "results").rglob("*"))
    (root / "models").mkdir()
    shutil.copy(saved[-1], root / "models" / "model.pt")
    _run(root, ["configs/test.yaml", OVERLAY_FILE], *small)
    _run(root, ["configs/inference.yaml", OVERLAY_FILE], "--dataset_dir", str(root / "test_data"), *small)
    x = torch.rand(1, 1, 32, 32, 32)
    net = _verify_and_export(root, "configs/train.yaml", tmp_path / "model.ts", x)
    assert net.fusion == "late" and net.out_channels == 4
    from freq_transforms.bundle.overlay import bundle_networks

    networks = bundle_networks(root, ("none", "early"), seed=3)  # early v2 starts as the template's own network
    with torch.no_grad():
        torch.testing.assert_close(networks["early"].eval()(x), networks["none"].eval()(x), atol=1e-5, rtol=1e-5)
