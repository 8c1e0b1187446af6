"""Bad input gives one clear error naming the file or key; kills lose nothing; same seed, same result."""

import gzip
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import cli_runner
from freq_transforms.data import DataError, bundle_split, check_case, load_msd_datalist
from freq_transforms.lab.phantoms import write_phantom_dataset

ROOT = Path(__file__).resolve().parents[1]
HIPPO = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
SMALL = ["--spatial_size", "[32,32,24]", "--num_workers", "0", "--cache_rate", "0", "--backbone", "UNet",
         "--backbone_kwargs", "{'channels': (8, 16, 32), 'strides': (2, 2), 'num_res_units': 1}"]


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory):
    return write_phantom_dataset("hippocampus", tmp_path_factory.mktemp("clean") / "data", n=8, seed=5, progress=False)


@pytest.fixture
def dataset(clean_set, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(clean_set, copy)
    return copy


def _case(dataset: Path, kind: str = "labelsTr", index: int = 0) -> Path:
    return dataset / kind / f"hippocampus_{index:03d}.nii.gz"


def _rewrite(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> None:
    old = nib.load(str(path))
    nib.save(nib.Nifti1Image(data, old.affine if affine is None else affine), str(path))


def _split(dataset: Path, **kwargs):
    """The split a bundle makes with these settings (checked first, as a bundle's settings component does)."""
    from freq_transforms.bundle.settings import Settings

    kwargs.setdefault("num_classes", 3)
    return bundle_split(Settings(dataset_dir=str(dataset), split_ratio=[6, 1, 1], **kwargs))


def test_clean_dataset_passes(dataset):
    parts = _split(dataset)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [6, 1, 1]


@pytest.mark.parametrize("problem,match", [
    ("no_dir", "does not exist or is not a folder"),
    ("no_json", "dataset.json is missing"),
    ("bad_json", "is not valid JSON"),
    ("no_training", "has no 'training' list"),
    ("missing_file", "hippocampus_002.nii.gz .*does not exist"),
    ("empty", "training list is empty"),
])
def test_dataset_folder_problems(dataset, problem, match):
    meta_path = dataset / "dataset.json"
    meta = json.loads(meta_path.read_text())
    target = dataset
    if problem == "no_dir":
        target = dataset / "nowhere"
    elif problem == "no_json":
        meta_path.unlink()
    elif problem == "bad_json":
        meta_path.write_text("{training: [")
    elif problem == "no_training":
        meta_path.write_text(json.dumps({"name": "x"}))
    elif problem == "missing_file":
        _case(dataset, "imagesTr", 2).unlink()
    elif problem == "empty":
        meta_path.write_text(json.dumps({**meta, "training": []}))
    with pytest.raises(DataError, match=match):
        _split(target)


def test_n_train_out_of_range_names_key_and_size(dataset):
    with pytest.raises(DataError, match=r"n_train=7 is larger than the train part \(6 cases"):
        _split(dataset, n_train=7)
    with pytest.raises(DataError, match="^n_train must be a positive integer or null, got 0$"):
        _split(dataset, n_train=0)


def test_shape_and_affine_mismatch(dataset):
    label = _case(dataset)
    data = np.asarray(nib.load(str(label)).dataobj)
    _rewrite(label, data[:-1])
    with pytest.raises(DataError, match=f"{label}.* has shape"):
        check_case(str(_case(dataset, "imagesTr")), str(label), 3)
    shifted = nib.load(str(_case(dataset, "imagesTr"))).affine.copy()
    shifted[0, 3] += 2.0
    _rewrite(label, data, shifted)
    with pytest.raises(DataError, match="different affines"):
        check_case(str(_case(dataset, "imagesTr")), str(label), 3)


def test_nan_voxels_error_or_documented_replacement(dataset):
    image = _case(dataset, "imagesTr")
    data = np.asarray(nib.load(str(image)).dataobj).astype(np.float32)
    data[3, 4, 5] = np.nan
    data[4, 4, 5] = np.inf
    _rewrite(image, data)
    with pytest.raises(DataError, match=f"{image} has 2 NaN/Inf voxels.*nan_policy='zero'"):
        check_case(str(image), str(_case(dataset)), 3)
    check_case(str(image), str(_case(dataset)), 3, nan_policy="zero")


def test_corrupt_truncated_and_non_nifti_files(dataset):
    image = _case(dataset, "imagesTr")
    raw = image.read_bytes()
    image.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=f"{image}"):
        check_case(str(image), None)
    image.write_bytes(gzip.compress(b"this is not an image"))
    with pytest.raises(DataError, match=f"{image} is not a readable NIfTI"):
        check_case(str(image), None)


def test_label_values_outside_classes_and_fractional(dataset):
    label = _case(dataset)
    data = np.asarray(nib.load(str(label)).dataobj).astype(np.float32)
    bad = data.copy()
    bad[0, 0, 0] = 3
    _rewrite(label, bad.astype(np.uint8))
    with pytest.raises(DataError, match=rf"{label} holds label values \[3\] outside the declared classes 0..2"):
        check_case(str(_case(dataset, "imagesTr")), str(label), 3)
    bad = data.copy()
    bad[0, 0, 0] = 0.5
    _rewrite(label, bad)
    with pytest.raises(DataError, match=f"{label} holds non-integer label values"):
        check_case(str(_case(dataset, "imagesTr")), str(label), 3)
    _rewrite(label, data)  # float32 labels with whole values (as in the real MSD files) are fine
    check_case(str(_case(dataset, "imagesTr")), str(label), 3)


def test_4d_image_names_the_option(dataset):
    image = _case(dataset, "imagesTr")
    data = np.asarray(nib.load(str(image)).dataobj)
    _rewrite(image, np.stack([data, data], axis=-1))
    with pytest.raises(DataError, match=f"{image} has shape .*in_channels"):
        check_case(str(image), str(_case(dataset)), 3)


def test_inference_on_a_missing_input_dir_is_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
           "--input_dir", str(missing), "--output_dir", str(tmp_path / "out")]
    result = cli_runner.run(cmd, cwd=HIPPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == (f"error: input check failed: input_dir {missing} does not "
                                                      "exist (give a folder of .nii.gz images or one file)")
    assert not (tmp_path / "out").exists()


def test_bundle_run_on_bad_data_fails_before_writing_anything(dataset, tmp_path):
    label = _case(dataset, index=3)
    data = np.asarray(nib.load(str(label)).dataobj).copy()
    data[0, 0, 0] = 7
    _rewrite(label, data)
    root = tmp_path / "run"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json",
           "--dataset_dir", str(dataset), "--bundle_root", str(root), "--epochs", "1", *SMALL]
    result = cli_runner.run(cmd, cwd=HIPPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (f"error: dataset check failed: {label} holds label values "
                                                      "[7] outside the declared classes 0..2")
    assert "Traceback" not in result.stdout + result.stderr  # one line, not one line and 80 more
    assert not root.exists()


def test_cli_error_is_one_line_and_exit_2(tmp_path):
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "split", str(tmp_path / "missing")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: dataset_dir {tmp_path / 'missing'} does not exist or is not a folder"]


def test_msd_datalist_resolves_paths(clean_set):
    items = load_msd_datalist(clean_set)
    assert len(items) == 8 and all(Path(i["image"]).is_absolute() and Path(i["label"]).is_file() for i in items)


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    from freq_transforms.handlers import OverwritingDiskSaver

    path = tmp_path / "model.pt"
    saver = OverwritingDiskSaver(str(tmp_path), "model.pt")
    saver({"w": torch.ones(3)}, "ignored-name.pt")
    saver.remove("model.pt")  # ignite's Checkpoint calls this before saving again: the file must stay
    with pytest.raises(Exception):
        saver({"bad": lambda: None}, "model.pt")  # lambdas cannot be pickled
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left
    assert path.stat().st_mode & 0o044 == 0o044  # readable by group and others, like any file


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    from freq_transforms.atomic import atomic_write, atomic_write_text

    path = atomic_write_text(tmp_path / "a.txt", "old")

    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


# 4 iterations an epoch against 3 batches in one pass of the 6 training cases: epochs end mid-pass, as the
# heart bundle's 20 against 8 do
PATCH = ["--sampling", "patch", "--patch_size", "[32,32,24]", "--iterations_per_epoch", "4", "--target_spacing",
         "median"]


def _train_cmd(dataset: Path, root: Path, epochs: int, seed: int = 0, sampling: str = "resize") -> list:
    return [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json",
            "--dataset_dir", str(dataset), "--bundle_root", str(root), "--epochs", str(epochs),
            "--val_interval", "1", "--seed", str(seed), "--augment", "True", *SMALL,
            *(PATCH if sampling == "patch" else ["--sampling", "resize"])]


def _epoch(path: Path) -> int:
    trainer = torch.load(path, weights_only=True)["trainer"]
    return trainer["iteration"] // trainer["epoch_length"]


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["resize", "patch"])  # patch: random crops and iteration-counted epochs
def test_sigkill_then_same_command_resumes(clean_set, tmp_path, sampling):
    root = tmp_path / "run"
    cmd = _train_cmd(clean_set, root, epochs=12, sampling=sampling)
    first = subprocess.Popen(cmd, cwd=HIPPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = root / "models" / "resume.pt"
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        if resume.is_file() and _epoch(resume) >= 2:
            break
        time.sleep(0.05)
    assert first.poll() is None, "training ended before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    epoch_at_kill = _epoch(resume)
    assert 2 <= epoch_at_kill < 12
    torch.load(root / "models" / "model.pt", weights_only=True)  # never truncated
    second = cli_runner.run(cmd, cwd=HIPPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert f"resumed from {resume} at epoch {epoch_at_kill} of 12" in log
    assert f"Epoch: {epoch_at_kill + 1}/12" in log and "Epoch: 1/12" not in log
    assert not resume.exists()  # a finished run leaves no resume state: the next run starts afresh
    # bit-exact: the same validation history and best weights as a run never interrupted (RNG states travel in
    # the resume file)
    straight = tmp_path / "straight"
    result = cli_runner.run(_train_cmd(clean_set, straight, epochs=12, sampling=sampling), cwd=HIPPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    def without_seconds(run: Path) -> list:  # wall time differs; every other column must be identical
        rows = [line.split(",") for line in (run / "eval" / "validation_metrics.csv").read_text().splitlines()]
        column = rows[0].index("seconds")
        return [row[:column] + row[column + 1:] for row in rows]

    history = without_seconds(root)
    assert len(history) == 13 and history == without_seconds(straight)
    seconds = [float(line.split(",")[2]) for line in (root / "eval" / "validation_metrics.csv").read_text().splitlines()[1:]]
    assert seconds == sorted(seconds) and seconds[0] > 0  # training time adds up over the two pieces
    resumed_weights = torch.load(root / "models" / "model.pt", weights_only=True)
    straight_weights = torch.load(straight / "models" / "model.pt", weights_only=True)
    for key, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[key], value, rtol=0, atol=0)


def test_same_seed_same_split_and_weights(clean_set, tmp_path):
    states, splits = [], []
    for run in ("a", "b"):
        root = tmp_path / run
        result = cli_runner.run(_train_cmd(clean_set, root, epochs=2), cwd=HIPPO, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        states.append(torch.load(root / "models" / "model.pt", weights_only=True))
        splits.append(json.loads((root / "eval" / "split.json").read_text()))
    assert splits[0] == splits[1]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)


def test_different_seed_keeps_val_and_test_and_nests(clean_set):
    small = _split(clean_set, num_classes=2, seed=1, n_train=3, check_data=False)
    large = _split(clean_set, num_classes=2, seed=1, n_train=5, check_data=False)
    other = _split(clean_set, num_classes=2, seed=2, check_data=False)
    assert small["train"] == large["train"][:3]
    assert small["val"] == large["val"] == other["val"] and small["test"] == other["test"]
