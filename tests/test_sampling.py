"""Patch mode: spacing planning, the grid and orientation of sliding-window predictions, the patch settings'
checks, and the learning-rate schedule."""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import fire
import pytest
import torch
from ignite.engine import Engine, Events
from monai.bundle import ConfigParser

import cli_runner
from freq_transforms.bundle.checks import check_patch_size
from freq_transforms.bundle.settings import Settings
from freq_transforms.errors import SettingsError
from freq_transforms.recipe import weights_with_record
from freq_transforms.data import DataError
from freq_transforms.handlers import PolyLearningRate, TrainingClock
from freq_transforms.lab.phantoms import write_phantom_dataset
from freq_transforms.sampling import (cutoff_cycles_per_mm, median_spacing, ras_spacing, resolve_target_spacing)

ROOT = Path(__file__).resolve().parents[1]
SPLEEN = ROOT / "bundles" / "spleen_ct_fd_segmentation"
HIPPO = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
SMALL_NET = "{'channels': (8, 16, 32), 'strides': (2, 2), 'num_res_units': 1}"


def _rotated_lps_affine(spacing, angle_deg=20.0, origin=(30.0, -12.0, 55.0)):
    """LPS storage (x and y flipped against RAS) rotated about the S axis: nothing about it is the identity."""
    a = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-spacing[0], -spacing[1], spacing[2]])
    affine[:3, 3] = origin
    return affine


def _ct_volume(shape, rng):
    """HU volume: air around an elliptic body of soft tissue (40 HU) holding an off-centre bright organ
    (150 HU), so that a flip or shift of the output shows as lost overlap."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    image = np.full(shape, -1000.0, np.float32)
    image[(x / 0.9) ** 2 + (y / 0.75) ** 2 < 1] = 40.0
    image[((x - 0.35) / 0.3) ** 2 + ((y + 0.2) / 0.25) ** 2 + ((z - 0.1) / 0.6) ** 2 < 1] = 150.0
    return image + rng.normal(0, 5, shape).astype(np.float32)


def test_ras_spacing_follows_the_axes_after_orientation(tmp_path):
    affine = np.zeros((4, 4))
    affine[0, 2], affine[1, 0], affine[2, 1], affine[3, 3] = 3.0, -1.0, 2.0, 1.0  # voxel axes: P (1 mm), S, R
    path = tmp_path / "permuted.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), affine), str(path))
    assert ras_spacing(path) == [3.0, 1.0, 2.0]
    from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation
    from monai.data.utils import affine_to_spacing

    oriented = Compose([LoadImage(image_only=True), EnsureChannelFirst(), Orientation("RAS")])(str(path))
    assert ras_spacing(path) == affine_to_spacing(oriented.affine, r=3).tolist()


def test_median_spacing_and_its_resolution(tmp_path):
    items = []
    for i, spacing in enumerate([(1.0, 1.0, 3.0), (0.8, 0.8, 2.5), (0.9, 0.9, 5.0)]):
        path = tmp_path / f"case{i}.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.diag([*spacing, 1.0])), str(path))
        items.append({"image": str(path)})
    assert median_spacing(items) == [0.9, 0.9, 3.0]
    assert resolve_target_spacing("resize", "median", items) is None
    assert resolve_target_spacing("patch", [1, 2, 3]) == [1.0, 2.0, 3.0]
    assert resolve_target_spacing("patch", "median", items) == [0.9, 0.9, 3.0]
    weights = tmp_path / "model.pt"
    net = torch.nn.Conv3d(1, 1, 1)
    net.config = {}  # what FrequencyDisentangledNet keeps of its arguments
    torch.save(weights_with_record(net, target_spacing=[2.0, 2.0, 2.0]), weights)
    assert resolve_target_spacing("patch", "median", items, weights) == [2.0, 2.0, 2.0]  # the trained grid wins
    assert resolve_target_spacing("patch", "median", items, tmp_path / "none.pt") == [0.9, 0.9, 3.0]
    with pytest.raises(DataError, match="target_spacing 'median'"):
        resolve_target_spacing("patch", "median", None, tmp_path / "none.pt")
    with pytest.raises(DataError, match="training list is empty"):
        median_spacing([])


def test_cutoff_in_cycles_per_mm():
    assert cutoff_cycles_per_mm(0.1, [1.25, 1.25, 1.37]) == pytest.approx([0.04, 0.04, 0.0365], abs=1e-4)


@pytest.mark.parametrize("settings,key", [
    ({"sampling": "patches"}, "sampling"),
    ({"patch_size": [96, 96]}, "patch_size"),
    ({"target_spacing": [1.0, 1.0]}, "target_spacing"),
    ({"target_spacing": [1.0, 0.0, 1.0]}, "target_spacing"),
    ({"target_spacing": [1.0, -1.5, 1.0]}, "target_spacing"),
    ({"target_spacing": "mean"}, "target_spacing"),
    ({"sw_overlap": 1.0}, "sw_overlap"),
    ({"samples_per_volume": 0}, "samples_per_volume"),
    ({"lr_schedule": "cosine"}, "lr_schedule"),
    ({"largest_component": "maybe"}, "largest_component"),
])
def test_bad_sampling_settings_name_their_key(settings, key):
    good = {"sampling": "patch", "patch_size": [96, 96, 64], "target_spacing": [1.5, 1.5, 2.0], "sw_overlap": 0.5,
            "samples_per_volume": 2, "iterations_per_epoch": 50, "lr_schedule": "poly", "largest_component": True}
    assert Settings(**good)["sampling"] == "patch"
    with pytest.raises(SettingsError, match=f"^{key} "):
        Settings(**{**good, **settings})


def test_patch_size_divisibility():
    assert check_patch_size("patch", [96, 96, 64], [8, 8, 8])
    assert check_patch_size("resize", [95, 95, 95], [8, 8, 8])  # unused in resize mode
    with pytest.raises(SettingsError, match=r"^patch_size \[96, 90, 64\] must be divisible by \[8, 8, 8\].*88"):
        check_patch_size("patch", [96, 90, 64], [8, 8, 8])


def test_bad_boolean_override_stops_in_one_line_before_writing(tmp_path):
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=4, seed=3, progress=False)
    root = tmp_path / "run"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", "--dataset_dir",
           str(data), "--bundle_root", str(root), "--num_workers", "0", "--augment", "sometimes"]
    result = cli_runner.run(cmd, cwd=HIPPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == "error: augment must be true or false, got 'sometimes'"
    assert not root.exists()


@pytest.mark.parametrize("override,message", [
    (["--patch_size", "[36,48,32]"], "error: patch_size [36, 48, 32] must be divisible by [8, 8, 8] per axis"),
    (["--target_spacing", "[1.0,1.0]"], "error: target_spacing must be 3 positive numbers or 'median'"),
    (["--target_spacing", "[1.0,0,1.0]"], "error: target_spacing must be 3 positive numbers or 'median'"),
])
@pytest.mark.parametrize("config", ["train", "inference"])
def test_bad_patch_settings_stop_in_one_line_before_writing(override, message, config, tmp_path):
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=4, seed=3, progress=False)
    root = tmp_path / "run"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", f"configs/{config}.json",
           "--dataset_dir", str(data), "--bundle_root", str(root), "--sampling", "patch", "--num_workers", "0",
           "--input_dir", str(data / "imagesTr"), *override]
    result = cli_runner.run(cmd, cwd=HIPPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr
    assert not root.exists()  # no split.json, no weights set aside, no predictions


def test_a_patch_larger_than_the_volume_is_padded(tmp_path):
    """Hippocampus phantoms are 36x50x35: patches of 48x64x48 are padded for training and sliding windows."""
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=5, seed=4, progress=False)
    root = tmp_path / "run"
    common = ["--dataset_dir", str(data), "--bundle_root", str(root), "--sampling", "patch", "--num_workers", "0",
              "--patch_size", "[48,64,48]", "--backbone", "UNet", "--backbone_kwargs", SMALL_NET, "--cache_rate", "0"]
    for args in (["--config_file", "configs/train.json", "--epochs", "1", "--iterations_per_epoch", "1"],
                 ["--config_file", "configs/inference.json", "--input_dir", str(data / "imagesTr" / "hippocampus_000.nii.gz"),
                  "--output_dir", str(tmp_path / "pred")]):
        result = cli_runner.run([sys.executable, "-m", "monai.bundle", "run", *args, *common], cwd=HIPPO,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    pred = nib.load(str(tmp_path / "pred" / "hippocampus_000_seg.nii.gz"))
    assert pred.shape == nib.load(str(data / "imagesTr" / "hippocampus_000.nii.gz")).shape


def _inference_parts(bundle: Path, overrides: dict):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.update(overrides)
    return [parser.get_parsed_content(key) for key in ("preprocessing", "inferer", "postprocessing")]


@pytest.mark.parametrize("crop_foreground", [True, False])
def test_patch_predictions_land_on_the_input_grid_in_its_orientation(crop_foreground, tmp_path):
    """The spleen bundle's own patch recipe (1.5x1.5x2.0 mm, sliding window) on a rotated LPS CT volume at
    0.8x0.8x2.5 mm: a "network" that marks the bright organ (windowed intensity above 0.5) must give back, on the
    input's own grid and affine, the organ as thresholded there."""
    rng = np.random.default_rng(0)
    shape, spacing = (72, 64, 20), (0.8, 0.8, 2.5)
    image, affine = _ct_volume(shape, rng), _rotated_lps_affine(spacing)
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(image, affine), str(path))
    preprocessing, inferer, postprocessing = _inference_parts(SPLEEN, {
        "bundle_root": str(tmp_path), "output_dir": str(tmp_path / "out"), "sampling": "patch",
        "patch_size": [32, 32, 16], "crop_foreground": crop_foreground})
    data = preprocessing({"image": str(path)})
    assert data["image"].pixdim.tolist() == pytest.approx([1.5, 1.5, 2.0])
    if crop_foreground:  # cropped to the body: the air around it is gone
        assert data["image"].shape[1] < 72 * 0.8 / 1.5
    with torch.no_grad():
        data["pred"] = inferer(data["image"][None], lambda x: 20 * torch.cat([0.5 - x, x - 0.5], dim=1))[0]
    postprocessing(data)
    pred = nib.load(str(tmp_path / "out" / "ct_seg.nii.gz"))
    assert pred.shape == shape
    np.testing.assert_allclose(pred.affine, affine, atol=1e-4)
    expected = image > -57 + 0.5 * (164 + 57)  # the ct_window scaling's 0.5
    found = np.asarray(pred.dataobj) == 1

    def dice(a):
        return 2 * (a & expected).sum() / (a.sum() + expected.sum())

    # resampling to 1.5x1.5x2.0 mm and back blurs the edges (the Dice ceiling); misplacement shows as a shift
    # or flip of the output that would overlap better
    moved = [dice(np.roll(found, step, axis)) for axis in range(3) for step in (-1, 1)] + \
        [dice(np.flip(found, axis)) for axis in range(3)]
    assert expected.sum() > 500 and dice(found) > 0.85 and dice(found) > max(moved), (dice(found), moved)


def test_poly_learning_rate_follows_the_engine_epochs():
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=99.0)
    engine = Engine(lambda e, b: None)
    PolyLearningRate(optimizer, base_lr=0.01, power=0.9).attach(engine)
    seen = []
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(optimizer.param_groups[0]["lr"]))
    engine.run([0], max_epochs=4)
    assert seen == pytest.approx([0.01 * (1 - e / 4) ** 0.9 for e in range(4)])
    constant = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=99.0)
    PolyLearningRate(constant, base_lr=0.01, power=0.0).attach(engine := Engine(lambda e, b: None))
    engine.run([0], max_epochs=3)
    assert constant.param_groups[0]["lr"] == 0.01


def test_training_clock_adds_up_resumed_pieces():
    clock = TrainingClock()
    clock.load_state_dict({"seconds": 100.0})
    engine = Engine(lambda e, b: None)
    clock.attach(engine)
    engine.run([0, 1, 2], max_epochs=2)
    assert clock.iteration == 6 and 100.0 <= clock.seconds < 110.0
    again = TrainingClock()
    again.load_state_dict(clock.state_dict())
    assert again.seconds == pytest.approx(clock.seconds, abs=0.5)


def test_target_spacing_keeps_string_entries_and_inverts(tmp_path):
    """MONAI Label passes image_path beside image; MONAI's Spacingd would call .update on it."""
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    from freq_transforms.sampling import TargetSpacingd

    path = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 16, 12)).astype(np.float32),
                             np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
    pipeline = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image"),
                        TargetSpacingd("image", pixdim=(2.0, 2.0, 2.0))])
    out = pipeline({"image": str(path), "image_path": str(path)})
    assert out["image_path"] == str(path) and tuple(out["image"].shape) == (1, 10, 8, 12)
    assert tuple(pipeline.inverse(out)["image"].shape) == (1, 20, 16, 12)


@pytest.mark.parametrize("largest_component", [False, True])
def test_largest_component_drops_small_far_regions(largest_component, tmp_path):
    """A small bright blob far from the organ is kept as found, or dropped with largest_component."""
    rng = np.random.default_rng(1)
    shape = (72, 64, 20)
    image = _ct_volume(shape, rng)
    image[5:9, 30:34, 8:12] = 150.0  # 64 voxels of "organ" far from the organ
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(image, _rotated_lps_affine((0.8, 0.8, 2.5))), str(path))
    preprocessing, inferer, postprocessing = _inference_parts(SPLEEN, {
        "bundle_root": str(tmp_path), "output_dir": str(tmp_path / "out"), "sampling": "patch",
        "patch_size": [32, 32, 16], "crop_foreground": False, "largest_component": largest_component})
    data = preprocessing({"image": str(path)})
    with torch.no_grad():
        data["pred"] = inferer(data["image"][None], lambda x: 20 * torch.cat([0.5 - x, x - 0.5], dim=1))[0]
    postprocessing(data)
    found = np.asarray(nib.load(str(tmp_path / "out" / "ct_seg.nii.gz")).dataobj) == 1
    assert found[5:9, 30:34, 8:12].any() != largest_component
    assert found[40:60].sum() > 500  # the organ itself stays
